"""What the leader hands each door: every message in order, queue statuses as compact runs."""

from __future__ import annotations

from telepresence.centre.remote import Effects, RemoteConnection, SocketAddress, status_message


def status(position: int) -> dict:
    return {
        "type": "queue_status",
        "state": "waiting",
        "position": position,
        "expected_wait_s": 60,
        "capacity": False,
    }


def unpack(entries: list[dict]) -> list[tuple[str, str, dict]]:
    """(incarnation, socket, message) as a door would deliver them, in order."""
    out = []
    for entry in entries:
        if "statuses" in entry:
            out += [(entry["incarnation"], row[0], status_message(row)) for row in entry["statuses"]]
        else:
            out.append((entry["incarnation"], entry["conn"], entry["send"]))
    return out


def test_statuses_travel_as_rows_and_every_socket_keeps_its_order():
    effects = Effects()
    a = RemoteConnection(SocketAddress("door1", "life1", "a"), effects)
    b = RemoteConnection(SocketAddress("door1", "life1", "b"), effects)
    old_b = RemoteConnection(SocketAddress("door1", "life0", "b"), effects)  # an earlier life of door1
    c = RemoteConnection(SocketAddress("door2", "life1", "c"), effects)
    sent = [
        (a, {"type": "welcome", "ticket": "t"}),
        (a, status(2)),
        (b, status(3)),
        (old_b, status(4)),
        (c, status(1)),
        (a, {"type": "call_started", "call_id": "x"}),
        (b, status(2)),
        (a, {"type": "queue_status", "state": "waiting", "position": 1}),  # not the usual fields: as is
    ]
    for conn, message in sent:
        conn.send(message)
    by_node = effects.take()
    assert effects.take() == {}
    door1 = by_node["door1"]
    assert [sorted(entry) for entry in door1] == [
        ["conn", "incarnation", "send"],
        ["incarnation", "statuses"],  # a's and b's statuses: one run
        ["incarnation", "statuses"],  # the earlier life's: a run of its own
        ["conn", "incarnation", "send"],
        ["incarnation", "statuses"],
        ["conn", "incarnation", "send"],
    ]
    expected = [
        (conn.address.incarnation, conn.address.local_id, message)
        for conn, message in sent
        if conn.address.node == "door1"
    ]
    assert unpack(door1) == expected
    assert unpack(by_node["door2"]) == [("life1", "c", status(1))]
