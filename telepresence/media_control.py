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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from media.answer import IceGathering
from media.layout import AVATAR
from media.peers import Bitrate
from media.room import MediaError, Role
from telepresence import protocol as p
from telepresence.calls import Call, CallState
from telepresence.config import Settings, ice_addresses
from telepresence.host_janus import JanusTarget
from telepresence.hosts import HostDesk, resolve_look
from telepresence.media_load import MediaLoad
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
        # Resolved once, at start-up: a bad look is a configuration error, not a customer's.
        self._greeter_spec = resolve_look(settings.greeter_look) if settings.greeter_look else None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnects = ReconnectWaits(settings.media_reconnect_s)
        self._next_receipt = 0.0
        self.pool: WorkerPool | None = None
        self.load = MediaLoad(metrics)  # every live room, and what each costs
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
        return self.hosts.host is not None or self._greeter_spec is not None

    async def _answer(self, call: Call, role: Role, sdp: str) -> None:
        new_room = call.room is None
        room = self._room(call)
        if new_room and self.greets:
            await self._greet(call, room)
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
                self.handover([call])

        return on_peer_state

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
        room.on_lost = self._lost_handler(call)
        if self.shedding.screen_fps is not None or self.shedding.screen_scale < 1:
            room.set_screen_limits(self.shedding.screen_fps, self.shedding.screen_scale)
        self.load.rooms[call.id] = room
        return room

    def server_ice_servers(self, label: str) -> list[dict[str, Any]]:
        """The ICE servers of one room's own peers, as RTCIceServer dicts: TURN credentials
        minted for ``server-<label>`` now (valid ``turn_ttl_s``), and the ice_servers setting."""
        return self._ice.ice_servers(f"server-{label}", self._wall_clock(), browser=False)

    async def _greet(self, call: Call, room: RoomHandle) -> None:
        """The call (or the wait) opens on the avatar; a layout change hands over to the agent.

        The brand's live host if one runs; otherwise, for a waiting customer, a scripted
        greeter of their own that reads them their place and expected wait.
        """
        if self.hosts.host is not None and isinstance(room, LocalRoom):
            track: MediaStreamTrack = self.hosts.host.viewer_track()
            await room.compositor.attach(AVATAR, track, label=call.id)
            room.set_layout("avatar")
        elif call.agent_id == "" and self._greeter_spec is not None:
            try:
                await room.greet(self.settings.greeter_look)
            except MediaError as exc:
                raise ProtocolError(exc.code, exc.message) from None
        else:
            return
        self._tell_both(call, {"type": "layout", "call_id": call.id, "layout": "avatar"})

    def announce(self, lobby: Call, position: int | None, wait_s: float | None) -> None:
        """A waiting customer's own greeter says their place and expected wait."""
        if lobby.room is None or not lobby.room.greeting or position is None:
            return
        if wait_s is None:
            wait = "Everyone is busy right now, and you keep your place"
        elif wait_s < 60:
            wait = "It should be less than a minute"
        else:
            wait = f"It should be about {round(wait_s / 60)} minute{'s' if round(wait_s / 60) > 1 else ''}"
        lobby.room.say(f"You are number {position} in line. {wait}.")

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
        room.on_lost = self._lost_handler(call)
        self.load.rooms[call.id] = self.load.rooms.pop(lobby.id, room)
        if "connected" in call.peer_states.values():
            call.move(CallState.NEGOTIATING)
            call.move(CallState.LIVE)
        room.say(f"{call.agent_id} is here for you now.")

    def handover(self, calls: list[Call]) -> None:
        """The host hands over: calls showing the avatar switch to their human agent."""
        for call in calls:
            room = call.room
            if room is not None and call.active and room.layout.startswith("avatar"):
                room.set_layout("screen" if room.layout == "avatar_screen" else "agent")
                self._tell_both(call, {"type": "layout", "call_id": call.id, "layout": room.layout})

    async def host_stopped(self, calls: list[Call]) -> None:
        """The host is going: hand over, then take its picture out of every call."""
        self.handover(calls)
        for call in calls:
            if isinstance(call.room, LocalRoom):  # avatars are only ever in rooms of this process
                await call.room.compositor.detach(AVATAR)

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
        """The call's latency receipt so far: per stage p50/p95 in milliseconds, and what a browser lacks."""
        if call.room is None:
            return None
        self.load.sample()
        return {
            "type": "receipt",
            "call_id": call.id,
            "stages": call.room.receipt_summary(),
            "missing": call.room.missing,
            "cpu_pct": call.room.cpu_pct,
        }

    def refresh_gauges(self) -> None:
        """Per media process and per live call CPU for /metrics (ended calls drop out)."""
        self.load.publish(self.pool)

    @property
    def next_receipt_at(self) -> float:
        """When live receipts are due next (monotonic seconds)."""
        return self._next_receipt

    def push_receipts(self, calls: list[Call], now: float) -> None:
        """Send live calls' receipts to their agents when due."""
        if now < self._next_receipt:
            return
        for call in calls:
            if call.state is CallState.LIVE and (receipt := self.receipt(call)) is not None:
                self._send(call, "agent", receipt)
        self._next_receipt = now + self.settings.receipt_interval_s

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
        summary = room.receipt_summary()
        for stage, figures in summary.items():
            self.metrics.observe_call_stage(stage, figures["p95"])
        logger.info("%s: latency receipt %s", call.id, _format(summary))
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


def _format(summary: dict[str, dict[str, float]]) -> str:
    return (
        ", ".join(f"{stage} p50 {f['p50']:.1f} p95 {f['p95']:.1f} ms" for stage, f in sorted(summary.items()))
        or "no frames"
    )
