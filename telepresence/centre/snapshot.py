"""The centre's state as a leader writes it: the matchmaker, the directory, where rooms are, ids.

Pickled whole (one consistent picture, shared references kept: a session is the same
object in the customer table and the socket table), with the last inbox entry and the
last step it includes. The Redis database is trusted the way the process's own memory
is: only the centre's processes, which share its secret, write it
(:mod:`telepresence.redis_link` refuses a process with another secret). A snapshot names
its format version; a leader refuses one it does not know rather than guess.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

from telepresence.centre.media_router import MediaRouter
from telepresence.centre.remote import Effects, RemoteConnection
from telepresence.switchboard import Switchboard

VERSION = 2


class SnapshotError(Exception):
    """A snapshot this version cannot read."""


@dataclass
class Restored:
    conns: dict[str, RemoteConnection]  # every socket the state knows, by connection id
    applied: str  # the last inbox entry the state includes
    step: str  # the last committed step it includes


def capture(switchboard: Switchboard, router: MediaRouter, *, applied: str, step: str) -> bytes:
    directory = switchboard.directory
    state = {
        "version": VERSION,
        "applied": applied,
        "step": step,
        "ids": switchboard.ids.__getstate__(),
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


def restore(data: bytes, switchboard: Switchboard, router: MediaRouter, effects: Effects) -> Restored:
    """Load ``data`` into a fresh switchboard, in place (its parts hold references to its tables)."""
    state = pickle.loads(data)
    version = state.get("version") if isinstance(state, dict) else None
    if version != VERSION:
        raise SnapshotError(
            f"snapshot format {version} is not {VERSION}: written by another version of the server?"
        )
    switchboard.ids.__setstate__(state["ids"])  # type: ignore[attr-defined]  # the centre's DerivedIds
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
    return Restored(conns, state["applied"], state["step"])
