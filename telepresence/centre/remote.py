"""A socket held by some door, as the leader's switchboard sees it.

The leader never writes to a socket: a :class:`RemoteConnection` adds what the switchboard
sends to :class:`Effects`, which the leader commits to the holding door's outbox stream
together with the state that caused it (see :mod:`telepresence.centre.leader`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

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

    def take(self) -> dict[str, list[Message]]:
        taken, self.by_node = dict(self.by_node), defaultdict(list)
        return taken


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

    def __init__(self, address: SocketAddress, effects: Effects | None = None) -> None:
        self.address = address
        self.id = address.conn_id
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

    def __getstate__(self) -> dict[str, Any]:
        return {"address": self.address}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["address"])  # type: ignore[misc]
