"""A socket held by some door, as the leader's switchboard sees it.

The leader never writes to a socket: a :class:`RemoteConnection` adds what the switchboard
sends to :class:`Effects`, which the leader commits to the holding door's outbox stream
together with the state that caused it (see :mod:`telepresence.centre.leader`). The door
reads each entry back into (socket, message) pairs with :func:`deliveries`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from telepresence.reports import LineParams, waiting_status, waiting_status_text
from telepresence.sessions import Connection

Message = dict[str, Any]
# A queue_status travels as a row of these fields, after its socket's id (see Effects.add_status).
STATUS_FIELDS = ("state", "position", "expected_wait_s", "capacity")
_status_fields = itemgetter(*STATUS_FIELDS)


def status_row(local_id: str, message: Message) -> tuple[Any, ...] | None:
    """A ``queue_status`` message as a compact row; None for any other message.

    A tuple: a head of the queue leaving makes thousands in one step, and the garbage
    collector lets go of a tuple of plain values at its first look, where lists alive
    until the commit were carried into the oldest generation (whose full collections
    took 0.3-1 s at 10,000 waiting)."""
    if len(message) != len(STATUS_FIELDS) + 1 or message.get("type") != "queue_status":
        return None
    try:
        return (local_id, *_status_fields(message))
    except KeyError:
        return None


def status_message(row: Sequence[Any]) -> Message:
    """The ``queue_status`` message a row of :func:`status_row` came from (the same fields, in order)."""
    return {"type": "queue_status", **dict(zip(STATUS_FIELDS, row[1:], strict=True))}


class Effects:
    """What the leader's last step asked to be delivered, grouped by door."""

    def __init__(self) -> None:
        self.by_node: defaultdict[str, list[Message]] = defaultdict(list)

    def add(self, node: str, entry: Message) -> None:
        self.by_node[node].append(entry)

    def add_status(self, node: str, incarnation: str, row: Sequence[Any]) -> None:
        """A queue_status joins the run of them just before it (a new run after any other
        entry, so every socket's messages keep their order). A move of the head of a queue
        pushes thousands of statuses at once: as rows they cost a third of the JSON and none
        of the per-entry envelopes."""
        entries = self.by_node[node]
        last = entries[-1] if entries else None
        if last is None or "statuses" not in last or last["incarnation"] != incarnation:
            last = {"statuses": [], "incarnation": incarnation}
            entries.append(last)
        last["statuses"].append(row)

    def add_line(self, params: LineParams, conns: list[Connection], places: list[int]) -> None:
        """The changed statuses of one queue's line (no CPU budget): per door, the line's
        parameters once, its sockets and their indexes in the line, from which the door makes
        each message (:func:`waiting_status`). The leader's work per socket is then a
        comparison and two appends, and its commit a fraction of the rows' JSON.
        (:attr:`telepresence.reports.Reports.line_sink` on a leader's switchboard.)"""
        runs: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
        for conn, ahead in zip(conns, places, strict=True):
            remote: RemoteConnection = conn  # type: ignore[assignment]  # every socket a leader knows
            run = runs.get(remote.door)
            if run is None:
                run = runs[remote.door] = ([], [])
            run[0].append(remote.local_id)
            run[1].append(ahead)
        for (node, incarnation), (ids, at) in runs.items():
            self.by_node[node].append({"line": params, "incarnation": incarnation, "ids": ids, "at": at})

    def take(self) -> dict[str, list[Message]]:
        taken, self.by_node = dict(self.by_node), defaultdict(list)
        return taken


def deliveries(entry: Message) -> Iterator[tuple[str, Message]]:
    """(local socket id, message) of an outbox entry's sends, in order: a run of status rows,
    a line's statuses, or one message (a close is not a send: none)."""
    if "statuses" in entry:
        for row in entry["statuses"]:
            yield row[0], status_message(row)
    elif "line" in entry:
        free, seats, mean = entry["line"]
        for local_id, ahead in zip(entry["ids"], entry["at"], strict=True):
            yield local_id, waiting_status(ahead, free, seats, mean)
    elif "send" in entry:
        yield entry["conn"], entry["send"]


def line_texts(entry: Message) -> Iterator[tuple[str, str]]:
    """(local socket id, JSON text) of a line entry's statuses: :func:`deliveries`' messages,
    already encoded (a door sends them as they are)."""
    free, seats, mean = entry["line"]
    for local_id, ahead in zip(entry["ids"], entry["at"], strict=True):
        yield local_id, waiting_status_text(ahead, free, seats, mean)


@dataclass(frozen=True)
class SocketAddress:
    """Where a socket is: the door (``host:port``), which life of that door, and the socket."""

    node: str
    incarnation: str
    local_id: str

    @property
    def conn_id(self) -> str:
        return f"{self.node}#{self.incarnation}/{self.local_id}"

    @classmethod
    def parse(cls, conn_id: str) -> SocketAddress:
        node, _, rest = conn_id.partition("#")
        incarnation, _, local_id = rest.partition("/")
        if not (node and incarnation and local_id):
            raise ValueError(f"not a socket address: {conn_id!r}")
        return cls(node, incarnation, local_id)


class RemoteConnection:
    """The :class:`~telepresence.sessions.Connection` protocol for a socket on any door.

    Pickled with the centre's state without its :class:`Effects`, which the leader that
    restores the state binds again (:meth:`bind`).
    """

    # Slots: a leader reads thousands of these per moved line, each read a cache miss fewer.
    __slots__ = ("address", "id", "door", "local_id", "_effects")

    def __init__(self, address: SocketAddress, effects: Effects | None = None) -> None:
        self.address = address
        self.id = address.conn_id
        self.door = (address.node, address.incarnation)
        self.local_id = address.local_id
        self._effects = effects

    def bind(self, effects: Effects) -> None:
        self._effects = effects

    def send(self, message: Message) -> None:
        row = status_row(self.address.local_id, message)
        if row is None:
            self._deliver({"conn": self.address.local_id, "send": message})
        elif self._effects is None:
            raise RuntimeError(f"{self.id}: not bound to a leader's effects")
        else:
            self._effects.add_status(self.address.node, self.address.incarnation, row)

    def close(self, code: int, reason: str) -> None:
        self._deliver({"conn": self.address.local_id, "close": [code, reason]})

    def _deliver(self, entry: Message) -> None:
        if self._effects is None:
            raise RuntimeError(f"{self.id}: not bound to a leader's effects")
        self._effects.add(self.address.node, {**entry, "incarnation": self.address.incarnation})

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickled as its id alone (the same string object as its key in the socket table, so
        # a reference): a snapshot holds ~10,000 of these, and the address object and state
        # dict each were ~15 % of a capture's time, on the leader's step path.
        return _remote_connection, (self.id,)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot written before :meth:`__reduce__` (its state: the address)."""
        self.__init__(state["address"])  # type: ignore[misc]


def _remote_connection(conn_id: str) -> RemoteConnection:
    """A :class:`RemoteConnection` as :meth:`RemoteConnection.__reduce__` pickles it, unbound."""
    return RemoteConnection(SocketAddress.parse(conn_id))
