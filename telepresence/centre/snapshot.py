"""The centre's state as the leader commits it: the matchmaker, the directory, and where rooms are.

Pickled whole (one consistent picture, shared references kept: a session is the same
object in the customer table and the socket table). The Redis database is trusted the
way the process's own memory is: only the centre's processes, which share its secret,
write it (:mod:`telepresence.redis_link` refuses a process with another secret).
A snapshot names its format version; a leader refuses one it does not know rather
than guess.
"""

from __future__ import annotations

import pickle

from telepresence.centre.media_router import MediaRouter
from telepresence.centre.remote import Effects, RemoteConnection
from telepresence.switchboard import Switchboard

VERSION = 1


class SnapshotError(Exception):
    """A snapshot this version cannot read."""


def capture(switchboard: Switchboard, router: MediaRouter) -> bytes:
    directory = switchboard.directory
    state = {
        "version": VERSION,
        "matchmaker": switchboard.matchmaker,
        "customers": directory.customers,
        "agents": directory.agents,
        "operators": directory.operators,
        "calls": directory.calls,
        "by_conn": directory.by_conn,
        "status_owed": switchboard.reports.status_owed,
        "rooms": router.rooms,
    }
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def restore(
    data: bytes, switchboard: Switchboard, router: MediaRouter, effects: Effects
) -> dict[str, RemoteConnection]:
    """Load ``data`` into a fresh switchboard (in place: its parts hold references to its
    tables) and return every socket it knows, bound to ``effects``, by connection id."""
    state = pickle.loads(data)
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise SnapshotError(
            f"snapshot format {state.get('version') if isinstance(state, dict) else '?'} "
            f"is not {VERSION}: was it written by another version of the server?"
        )
    switchboard.matchmaker.__dict__.update(state["matchmaker"].__dict__)
    directory = switchboard.directory
    for name in ("customers", "agents", "operators", "calls", "by_conn"):
        table = getattr(directory, name)
        table.clear()
        table.update(state[name])
    switchboard.reports.status_owed.update(state["status_owed"])
    router.rooms.update(state["rooms"])
    conns: dict[str, RemoteConnection] = {}
    sessions = [*directory.customers.values(), *directory.agents.values(), *directory.operators.values()]
    for session in sessions:
        if isinstance(session.conn, RemoteConnection):
            session.conn.bind(effects)
            conns[session.conn.id] = session.conn
    return conns
