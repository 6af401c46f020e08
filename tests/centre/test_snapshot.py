"""The centre's state as a leader pickles it (in memory: a leader's switchboard on a manual clock)."""

from __future__ import annotations

import pickle

from telepresence.centre import snapshot
from telepresence.centre.media_router import MediaRouter
from telepresence.centre.remote import Effects, RemoteConnection, SocketAddress
from tests.centre.test_line_statuses import LeaderLike


async def filled() -> LeaderLike:
    side = LeaderLike(lines=True)
    await side.send("agent-1", {"type": "login", "token": side.centre.token("agent-1", skills=("tech",))})
    for index in range(6):
        await side.send(f"customer-{index}", {"type": "join", "name": f"c{index}", "skill": "billing"})
    return side


async def test_a_snapshot_restores_every_socket_from_its_id_alone():
    side = await filled()
    data = snapshot.capture(side.switchboard, MediaRouter(side.effects), applied="5-0", step="7-0")
    # A socket is pickled as its id (a reference to its key in the socket table): no address
    # object and state dict each, which were ~15 % of a capture at 10,000 waiting.
    assert b"SocketAddress" not in data
    # One key object per queue, shared by its customers: pickled once, not once each.
    waiting = list(side.switchboard.directory.customers.values())
    assert len(waiting) == 6 and all(session.key is waiting[0].key for session in waiting)
    target = LeaderLike(lines=True)
    effects = Effects()
    restored = snapshot.restore(data, target.switchboard, MediaRouter(effects), effects)
    assert (restored.applied, restored.step) == ("5-0", "7-0")
    assert sorted(restored.conns) == sorted(conn.id for conn in side.conns.values())
    directory = target.switchboard.directory
    for conn_id, conn in restored.conns.items():
        assert directory.by_conn[conn_id].conn is conn  # one object, shared as before
        assert conn.address == SocketAddress.parse(conn_id)
    assert len({id(session.key) for session in directory.customers.values()}) == 1
    customer = next(s for s in directory.customers.values() if s.name == "c2")
    customer.conn.send({"type": "pong"})  # bound to the restoring leader's effects
    assert effects.take()[customer.conn.address.node][0]["send"] == {"type": "pong"}
    await side.centre.stop()
    await target.centre.stop()


def test_a_socket_pickled_by_an_earlier_version_still_loads():
    """Before, a socket was pickled as the class and its state (the address): a snapshot of
    that version, still in Redis at an upgrade, must load."""
    later = RemoteConnection.__reduce__
    del RemoteConnection.__reduce__  # pickle's default for the class, as it was
    RemoteConnection.__getstate__ = lambda self: {"address": self.address}  # type: ignore[method-assign]
    try:
        earlier = pickle.dumps(RemoteConnection(SocketAddress("door-a", "life", "ws-1")))
    finally:
        del RemoteConnection.__getstate__
        RemoteConnection.__reduce__ = later  # type: ignore[method-assign]
    assert b"SocketAddress" in earlier
    conn = pickle.loads(earlier)
    assert isinstance(conn, RemoteConnection)
    assert (conn.id, conn.door, conn.local_id) == ("door-a#life/ws-1", ("door-a", "life"), "ws-1")
