"""The leader's stand-in for :class:`~telepresence.media_control.MediaControl`.

On a centre of many processes a call's media lives on ONE door: the one that held the
agent's socket when the call's first media message came (the agent's browser and the
room are then on the same process, and the agent side is the one that sends the most).
The leader keeps no rooms: it forwards each media message, with where both sides'
sockets are now, to that door's outbox, and tells it when the call ends. The door's
:class:`~telepresence.centre.media_host.MediaHost` does the rest.
"""

from __future__ import annotations

from media.room import Role
from telepresence import protocol as p
from telepresence.calls import Call
from telepresence.centre.remote import Effects, RemoteConnection
from telepresence.directory import Directory
from telepresence.hosts import HostDesk
from telepresence.protocol import ProtocolError
from telepresence.shedding import SHED_STEPS, ShedStep


class MediaRouter:
    """Sends calls' media messages to the door that hosts each call's room."""

    greets = False  # no greeter or live host across processes (docs/scale-out.md)
    next_receipt_at = float("inf")  # doors push their rooms' receipts themselves
    # No WHIP/WHEP doors across processes (they answer 501 with --redis): no agent's WHIP
    # camera and no supervisors' taps for a console to be told of at login.
    agent_cameras = None
    call_taps = None

    def __init__(self, effects: Effects) -> None:
        self._effects = effects
        self._directory: Directory | None = None  # the switchboard's, once it exists (bind)
        self.hosts = HostDesk()  # never started here: host messages are refused by the leader
        self.shedding: ShedStep = SHED_STEPS[0]
        # call id -> the hosting door, as "node#incarnation" (kept in the centre's snapshot)
        self.rooms: dict[str, str] = {}

    def bind(self, directory: Directory) -> None:
        """The switchboard's directory, where the parties' sockets are looked up."""
        self._directory = directory

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def handle(self, call: Call, role: Role, message: p.ClientMessage) -> None:
        if isinstance(message, p.WebRtcAnswer):
            raise ProtocolError("out_of_order", "there is no offer from the server to answer")
        host = self.rooms.get(call.id)
        if host is None:
            if not isinstance(message, p.WebRtcOffer):
                raise ProtocolError("out_of_order", "media has not been negotiated in this call yet")
            agent = self._conn_of(call, "agent")
            if agent is None:
                raise ProtocolError("out_of_order", "the agent is reconnecting; try again in a moment")
            host = self.rooms[call.id] = f"{agent.address.node}#{agent.address.incarnation}"
        self._effects.add(
            host.partition("#")[0],
            {
                "media": "message",
                "call": self.describe(call),
                "role": role,
                "body": message.model_dump_json(),
            },
        )

    def describe(self, call: Call) -> dict[str, object]:
        """What the hosting door needs of a call: its parties, and where their sockets are now."""
        customer, agent = self._conn_of(call, "customer"), self._conn_of(call, "agent")
        return {
            "id": call.id,
            "customer_id": call.customer_id,
            "agent_id": call.agent_id,
            "host": self.rooms[call.id],
            "customer_conn": customer.id if customer else None,
            "agent_conn": agent.id if agent else None,
        }

    def _conn_of(self, call: Call, role: Role) -> RemoteConnection | None:
        assert self._directory is not None, "bind() the switchboard's directory first"
        conn = self._directory.conn_of(call, role)
        return conn if isinstance(conn, RemoteConnection) else None

    def close(self, call: Call) -> None:
        host = self.rooms.pop(call.id, None)
        if host is not None:
            self._effects.add(host.partition("#")[0], {"media": "close", "call": call.id, "host": host})

    def adopt(self, lobby: Call, call: Call) -> None:
        raise AssertionError("no lobby media across processes")  # greets is False

    def announce(self, lobby: Call, position: int | None, wait_s: float | None) -> None:
        pass

    def push_receipts(self, calls: list[Call], now: float) -> None:
        pass

    def shed(self, step: ShedStep) -> None:
        self.shedding = step

    def refresh_gauges(self) -> None:
        pass

    def calls_hosted_by(self, dead: set[str]) -> list[str]:
        """The calls whose room was on one of these doors (``node#incarnation``)."""
        return [call_id for call_id, host in self.rooms.items() if host in dead]
