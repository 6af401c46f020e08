"""The media side of calls: answering WebRTC offers, layouts, screen shares, latency receipts.

The switchboard hands every media message of a call here, outside its lock:
answering an offer gathers ICE candidates and takes a moment, and nothing else
may wait for that. Rooms are closed by tasks this object owns, so ending a call
never waits on peers shutting down, and :meth:`MediaControl.stop` awaits them all.

A room lives in a media worker process (``media_workers`` > 0, the least-loaded one)
or in this process (``media_workers = 0``; and rooms made while a brand's live host
runs, as the host is rendered here); both are a
:class:`~telepresence.room_handle.RoomHandle`, so nothing else cares where. A worker
that dies ends its calls as an agent drop does: the customer goes back to their place
in the queue.

The avatar in calls (a live host or a waiting customer's greeter, and its hand-over) is
:mod:`telepresence.media_avatars`'s; the latency receipts are :mod:`telepresence.media_receipts`'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCIceServer

from media.answer import IceGathering
from media.peers import Bitrate
from media.room import MediaError, Role
from telepresence import protocol as p
from telepresence.calls import Call, CallState
from telepresence.config import Settings, ice_addresses
from telepresence.host_janus import JanusTarget
from telepresence.hosts import HostDesk
from telepresence.media_avatars import CallAvatars
from telepresence.media_load import MediaLoad
from telepresence.media_receipts import MediaReceipts
from telepresence.media_reconnects import ReconnectWaits
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError
from telepresence.room_handle import LocalRoom, RoomHandle
from telepresence.shedding import SHED_STEPS, ShedStep
from telepresence.turn import IceConfig
from telepresence.worker_pool import WorkerPool
from telepresence.worker_room import WorkerGone

if TYPE_CHECKING:
    from telepresence.agent_cameras import AgentCameras
    from telepresence.call_taps import CallTaps

logger = logging.getLogger(__name__)

Message = dict[str, Any]
SendFn = Callable[[Call, Role, Message], None]
EndFn = Callable[[Call, str], Awaitable[None]]
RequeueFn = Callable[[Call], Awaitable[None]]


class MediaControl:
    """Owns every call's room: creation, negotiation, layout, receipts and closing."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        send: SendFn,
        end_call: EndFn,
        requeue_call: RequeueFn,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._send = send
        self._end_call = end_call
        self._requeue_call = requeue_call
        # The server's peers get TURN credentials of their own, minted per room (server-<call id>)
        # when the room is made; the Unix time comes from ``wall_clock``.
        self._ice = IceConfig.from_settings(settings)
        self.gathering = IceGathering(ice_addresses(settings), settings.ice_gather_timeout_s)
        self._wall_clock = wall_clock
        # A live host's peers: credentials minted for server-host-N when it starts (valid turn_ttl_s).
        self.hosts = HostDesk(
            lambda host_id: [RTCIceServer(**server) for server in self.server_ice_servers(host_id)],
            self._ice.policy,
            self.gathering,
            janus=JanusTarget.parse(settings.host_janus_rtp) if settings.host_janus_rtp else None,
            video_codec=settings.video_codec,
        )
        self.avatars = CallAvatars(self.hosts, settings.greeter_look, self._tell_both)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnects = ReconnectWaits(settings.media_reconnect_s)
        self.pool: WorkerPool | None = None
        self.load = MediaLoad(metrics)  # every live room, and what each costs
        self.receipts = MediaReceipts(settings.receipt_interval_s, metrics, self.load, send)
        self.shedding: ShedStep = SHED_STEPS[0]  # the step in force: every room's screen is held to it
        self.agent_cameras: AgentCameras | None = None  # agents' WHIP cameras (telepresence.door_registry)
        self.call_taps: CallTaps | None = None  # supervisors' taps on calls (telepresence.door_registry)

    async def start(self) -> None:
        """Start the media worker processes (``media_workers``); none: rooms run here."""
        if self.settings.media_workers > 0:
            self.pool = WorkerPool(
                self.settings.media_workers,
                self.metrics,
                log_level=self.settings.log_level,
                stop_timeout_s=self.settings.shutdown_timeout_s,
                nice=self.settings.media_worker_nice,
            )
            await self.pool.start()

    # ----------------------------------------------------------------- input

    async def handle(self, call: Call, role: Role, message: p.ClientMessage) -> None:
        """Apply one media message from ``role`` in ``call``. Raises ProtocolError."""
        if isinstance(message, p.WebRtcAnswer):
            raise ProtocolError("out_of_order", "there is no offer from the server to answer")
        if isinstance(message, p.WebRtcOffer):
            await self._answer(call, role, message.sdp)
        elif isinstance(message, p.SetLayout):
            if role != "agent":
                raise ProtocolError("forbidden", "only the agent chooses the layout")
            self._room(call).set_layout(message.layout)
            self._tell_both(call, {"type": "layout", "call_id": call.id, "layout": message.layout})
        elif isinstance(message, p.ScreenShare):
            if role == "agent":
                try:
                    await self._room(call).screen_shared(message.active)
                except MediaError as exc:  # its worker is gone or stuck: the call is ending
                    raise ProtocolError(exc.code, exc.message) from None
                self._tell_both(
                    call, {"type": "layout", "call_id": call.id, "layout": self._room(call).layout}
                )
            other: Role = "customer" if role == "agent" else "agent"
            self._send(
                call,
                other,
                {"type": "screen_share", "call_id": call.id, "from": role, "active": message.active},
            )
        elif isinstance(message, p.MediaStats):
            room = self._room(call)
            for name, value in message.stats.items():
                room.record_stat(f"{role}_{name}", value)

    @property
    def greets(self) -> bool:
        """Whether a waiting customer gets media: a live host runs, or a greeter look is set."""
        return self.avatars.greets

    async def _answer(self, call: Call, role: Role, sdp: str) -> None:
        new_room = call.room is None
        room = self._room(call)
        if new_room and self.greets:
            await self.avatars.greet(call, room)
        if call.state is CallState.CONNECTED or call.state is CallState.LIVE:
            call.move(CallState.NEGOTIATING)
        try:
            answer = await room.answer(role, sdp)
        except MediaError as exc:
            logger.info("%s: %s offer refused: %s", call.id, role, exc.message)
            self.metrics.protocol_errors.labels(exc.code).inc()
            if call.state is CallState.NEGOTIATING and "connected" not in call.peer_states.values():
                call.move(CallState.CONNECTED)
            raise ProtocolError(exc.code, exc.message) from None
        if call.active:
            self._send(call, role, {"type": "webrtc_answer", "call_id": call.id, "sdp": answer})
            if self.agent_cameras is not None:
                self.agent_cameras.room_ready(call)  # the agent's WHIP camera, if they publish one

    def _room(self, call: Call) -> RoomHandle:
        if not call.active:
            raise ProtocolError("out_of_order", "this call has ended")
        return call.media(self._make_room)

    def _lost_handler(self, call: Call) -> Callable[[], None]:
        def on_lost() -> None:
            logger.error("%s: its media worker died; the customer goes back to their place", call.id)
            if not call.active:
                return
            if not call.agent_id:  # a waiting customer's greeter: they keep their place, offer again
                failed = {"type": "media_status", "call_id": call.id, "role": "customer", "state": "failed"}
                self._send(call, "customer", failed)
                self.close(call)
            else:
                self._spawn(self._requeue_call(call), f"{call.id} media lost")

        return on_lost

    def _peer_state_handler(self, call: Call) -> Callable[[Role, str], None]:
        def on_peer_state(role: Role, state: str) -> None:
            call.peer_state_changed(role, state)
            self._tell_both(call, {"type": "media_status", "call_id": call.id, "role": role, "state": state})
            if state == "failed" and call.active and call.agent_id:
                self._reconnects.failed(call.id, role, self._give_up_handler(call, role))
            elif state == "connected":
                self._reconnects.connected(call.id, role)
            if role == "agent" and state == "connected" and call.hand_over_on_agent_media:
                call.hand_over_on_agent_media = False
                self.avatars.handover([call])

        return on_peer_state

    def _preview_handler(self, call: Call) -> Callable[[bool], None]:
        def on_preview(own_camera: bool) -> None:
            # Only the agent's console has a preview (docs/protocol.md "preview").
            source = "own_camera" if own_camera else "program"
            self._send(call, "agent", {"type": "preview", "call_id": call.id, "source": source})

        return on_preview

    def _give_up_handler(self, call: Call, role: Role) -> Callable[[], None]:
        """What ends the call when ``role``'s failed media does not come back in time."""

        def give_up() -> None:
            if call.active and call.peer_states.get(role) != "connected":
                logger.warning("%s: %s media did not come back", call.id, role)
                self._spawn(self._end_call(call, "media_failed"), f"{call.id} media failed")

        return give_up

    def _make_room(self, call: Call) -> RoomHandle:
        """In the least-loaded worker; here with no workers, or while a live host runs (its
        picture is made in this process)."""
        spec = {
            "label": call.id,
            "agent_name": call.agent_id,
            "size": self.settings.video_size,
            "fps": self.settings.video_fps,
            "codec": self.settings.video_codec,
        }
        ice = self.server_ice_servers(call.id)
        room: RoomHandle | None = None
        if self.pool is not None and self.hosts.host is None:
            try:
                room = self.pool.create_room(
                    **spec,
                    ice_servers=ice,
                    ice_transport_policy=self._ice.policy,
                    gathering=dataclasses.asdict(self.gathering),
                )
            except WorkerGone:
                logger.warning("%s: no media worker is running; the call's media runs here", call.id)
        if room is None:
            room = LocalRoom(
                **spec,
                bitrate=Bitrate(),
                ice_servers=[RTCIceServer(**server) for server in ice],
                ice_transport_policy=self._ice.policy,
                gathering=self.gathering,
            )
        room.on_peer_state = self._peer_state_handler(call)
        room.on_preview = self._preview_handler(call)
        room.on_lost = self._lost_handler(call)
        if self.shedding.screen_fps is not None or self.shedding.screen_scale < 1:
            room.set_screen_limits(self.shedding.screen_fps, self.shedding.screen_scale)
        self.load.rooms[call.id] = room
        return room

    def server_ice_servers(self, label: str) -> list[dict[str, Any]]:
        """The ICE servers of one room's own peers, as RTCIceServer dicts: TURN credentials
        minted for ``server-<label>`` now (valid ``turn_ttl_s``), and the ice_servers setting."""
        return self._ice.ice_servers(f"server-{label}", self._wall_clock(), browser=False)

    def announce(self, lobby: Call, position: int | None, wait_s: float | None) -> None:
        """A waiting customer's own greeter says their place and expected wait."""
        self.avatars.announce(lobby, position, wait_s)

    def adopt(self, lobby: Call, call: Call) -> None:
        """A waiting customer's media becomes the call's: no renegotiation for the customer.

        The agent joins the same room; when their media connects, the avatar hands over.
        """
        room, lobby.room = lobby.room, None
        if room is None:
            return
        call.room, call.peer_states = room, dict(lobby.peer_states)
        call.hand_over_on_agent_media = True
        room.set_agent_name(call.agent_id)
        room.on_peer_state = self._peer_state_handler(call)
        room.on_preview = self._preview_handler(call)
        room.on_lost = self._lost_handler(call)
        self.load.rooms[call.id] = self.load.rooms.pop(lobby.id, room)
        if "connected" in call.peer_states.values():
            call.move(CallState.NEGOTIATING)
            call.move(CallState.LIVE)
        room.say(f"{call.agent_id} is here for you now.")

    def handover(self, calls: list[Call]) -> None:
        """The host hands over: calls showing the avatar switch to their human agent."""
        self.avatars.handover(calls)

    async def host_stopped(self, calls: list[Call]) -> None:
        """The host is going: hand over, then take its picture out of every call."""
        await self.avatars.host_stopped(calls)

    def shed(self, step: ShedStep) -> None:
        """Hold every live room's screen tile to ``step`` on the server too, whatever the agent's
        browser sends (telepresence.admission); rooms made later start with it."""
        self.shedding = step
        for room in list(self.load.rooms.values()):
            room.set_screen_limits(step.screen_fps, step.screen_scale)

    # ---------------------------------------------------------------- output

    def _tell_both(self, call: Call, message: Message) -> None:
        self._send(call, "agent", message)
        self._send(call, "customer", message)

    def receipt(self, call: Call) -> Message | None:
        """The call's latency receipt so far (telepresence.media_receipts)."""
        return self.receipts.receipt(call)

    def refresh_gauges(self) -> None:
        """Per media process and per live call CPU for /metrics (ended calls drop out)."""
        self.load.publish(self.pool)

    @property
    def next_receipt_at(self) -> float:
        """When live receipts are due next (monotonic seconds)."""
        return self.receipts.next_receipt_at

    def push_receipts(self, calls: list[Call], now: float) -> None:
        """Send live calls' receipts to their agents when due."""
        self.receipts.push_receipts(calls, now)

    # --------------------------------------------------------------- closing

    def close(self, call: Call) -> None:
        """The call ended: log its receipt, feed the metrics, close its room in the background."""
        room, call.room = call.room, None
        self.load.rooms.pop(call.id, None)
        if self.agent_cameras is not None:
            self.agent_cameras.call_closed(call.id)
        self._reconnects.call_closed(call.id)
        if room is None:
            return
        self.receipts.closed(call, room)
        self._spawn(self._close_room(room, call.id), f"{call.id} close media")

    async def _close_room(self, room: RoomHandle, label: str) -> None:
        try:
            await asyncio.wait_for(room.close(), self.settings.shutdown_timeout_s)
        except Exception:
            # Closing must not fail the switchboard; a stuck peer is logged and dropped.
            logger.exception("%s: closing media failed", label)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop the host; wait for rooms being closed (bounded); cancel what is left; stop the
        media workers (each closes whatever it still holds; one that hangs is killed)."""
        await self.hosts.close()
        self._reconnects.cancel_all()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self.pool is not None:
            await self.pool.stop()
