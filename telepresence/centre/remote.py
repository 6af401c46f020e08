"""A socket held by some door, as the leader's switchboard sees it.

The leader never writes to a socket: a :class:`RemoteConnection` adds what the switchboard
sends to :class:`Effects`, which the leader commits to the holding door's outbox stream
together with the state that caused it (see :mod:`telepresence.centre.leader`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]


class Effects:
    """What the leader's last step asked to be delivered, grouped by door."""

    def __init__(self) -> None:
        self.by_node: defaultdict[str, list[Message]] = defaultdict(list)

    def add(self, node: str, entry: Message) -> None:
        self.by_node[node].append(entry)

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
        self._deliver({"conn": self.address.local_id, "send": message})

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
