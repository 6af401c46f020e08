"""A call's media on the server: the agent's and the customer's peer connections and one compositor.

The browsers offer (after gathering ICE: aiortc has no trickle ICE) and the room answers
(media.answer). Each side's media sections come in the order of media/sections.py, the
table the web client builds its offer from and docs/protocol.md ("WebRTC") shows, so the
room finds each transceiver by its section's name: the agent's mic, camera (gets a
preview of the composite), screen, customer_camera, customer_screen; the customer's mic,
camera (gets the composite) and screen.

Only what the compositor draws is decoded: the agent's camera and screen (the camera not
while it is forwarded as it came, media.passthrough). The customer's camera and screen
reach the agent as the encoded frames they came in (media.forward), voices as packets
(media.voice), and what the customer sees is encoded once for the customer and the
agent's preview (media.program). Every outgoing track is set up at answer time, so
nothing renegotiates when a camera or a screen comes and goes: the compositor changes
layout instead. The agent's camera may come from another peer for a while (an encoder
publishing over WHIP, relayed by the control process: media.room_camera).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack

from media import aiortc_internals as internals
from media.answer import (
    AIOICE_DEFAULTS,
    RCVR_RTT,
    IceGathering,
    MediaError,
    answer_with_codec_first,
    close_peer,
    receive_offer,
    with_receiver_rtt,
)
from media.capture_clock import align_sender_reports
from media.compositor import CompositorTrack
from media.congestion import FeedbackSender
from media.forward import EncodedForward, SlotTrack
from media.heap import release_free_memory
from media.layout import AGENT, SCREEN
from media.passthrough import CameraPassthrough
from media.peers import Bitrate, negotiated_codec, tune_video_sender
from media.program import Program
from media.room_camera import CameraFromElsewhere
from media.room_monitor import CallMonitor
from media.round_trip import ReferenceTimeReplies
from media.sections import SectionMismatch, match
from media.voice import OPUS_RATE, VoiceRelay
from media.voice_fanout import VoiceFanout
from media.whisper import WhisperedVoice

logger = logging.getLogger(__name__)

Role = Literal["agent", "customer"]
ROLES: tuple[Role, ...] = ("agent", "customer")


class Room(CameraFromElsewhere, CallMonitor):
    """The server side of one call's media.

    Args:
        label: a tag for log lines (the call id).
        agent_name: shown on the placeholder tile while the agent's camera is off.
        size, fps: the composite's size and fallback frame rate.
        codec: the video codec the server prefers when answering ("VP8" or "H264").
        bitrate: the video encoders' bitrate range.
        ice_servers: STUN/TURN servers for the server's peers (none on loopback).
        ice_transport_policy: "all", or "relay" for TURN relay candidates only.
        gathering: which interfaces, and how long STUN and TURN servers are waited for.
        on_peer_state: called with (role, connection state) on every change.

    ``on_preview(own_camera)`` (set by the owner) says what the agent's preview should show:
    True while the customer's picture is the agent's camera as it came (the preview stream is
    then held: media.program), False when it is the program again.
    """

    def __init__(
        self,
        *,
        label: str = "room",
        agent_name: str = "",
        size: str = "720p",
        fps: float = 30.0,
        codec: str = "VP8",
        bitrate: Bitrate | None = None,
        ice_servers: Sequence[RTCIceServer] = (),
        ice_transport_policy: str = "all",
        gathering: IceGathering = AIOICE_DEFAULTS,
        on_peer_state: Callable[[Role, str], None] | None = None,
    ) -> None:
        self.label = label
        self.codec = codec
        self.bitrate = bitrate
        self.ice_servers = list(ice_servers)
        self.ice_transport_policy = ice_transport_policy
        self.gathering = gathering
        self.on_peer_state = on_peer_state
        self.compositor = CompositorTrack(size=size, layout="agent", agent_name=agent_name, fps=fps)
        compositor = self.compositor  # not ``self``: the room must not be in a reference cycle
        self.passthrough = CameraPassthrough(
            lambda: compositor.shows_only_agent, compositor.times, label=f"{label} camera"
        )
        # What the customer sees, encoded once for the customer and the agent's preview.
        self.program = Program(
            compositor,
            passthrough=self.passthrough,
            bitrate=bitrate,
            receipt=compositor.receipt,
            label=f"{label} program",
        )
        self.on_preview: Callable[[bool], None] | None = None
        own = weakref.ref(self)  # the program keeps these: no cycle through the room
        self.program.may_hold_mirrors = lambda: (room := own()) is not None and room.camera_peer is None
        self.program.on_mirror = lambda held: (room := own()) is not None and room._preview_changed(held)
        # The customer's camera and screen reach the agent as they came (media.forward).
        self.customer_camera = EncodedForward("customer_camera", f"{label} customer_camera")
        self.customer_screen = EncodedForward("customer_screen", f"{label} customer_screen")
        # Fan-outs: a supervisor's monitor hears both voices too; the agent hears whispers
        # (media.room_monitor, media.whisper).
        self.to_customer_audio = VoiceFanout(f"{label} agent->customer")
        self.to_agent_audio = WhisperedVoice(f"{label} customer->agent")
        self.peers: dict[Role, RTCPeerConnection] = {}
        self._outgoing: dict[Role, list[MediaStreamTrack]] = {role: [] for role in ROLES}
        self.feedback: dict[Role, FeedbackSender] = {}
        self._round_trips: dict[Role, ReferenceTimeReplies] = {}
        self._direct_receive: dict[Role, internals.DirectReceive] = {}
        # What each side's browser did not offer that the call would use (the receipt shows it).
        self.missing: dict[Role, list[str]] = {}
        # The agent browser's sections by name, for its camera and mic to come back to
        # (media.room_camera: the agent's camera may come from another peer for a while).
        self.agent_sections: dict[str, RTCRtpTransceiver] = {}
        self._closed: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- control

    def _preview_changed(self, own_camera: bool) -> None:
        if self.on_preview is not None:
            self.on_preview(own_camera)

    @property
    def layout(self) -> str:
        return self.compositor.layout

    @property
    def passthrough_active(self) -> bool:
        """Whether the customer's video is the agent's camera as it came (media.passthrough)."""
        return self.program.forwarding

    def set_layout(self, name: str) -> None:
        """Switch the composite's layout (no renegotiation; a short cross-fade)."""
        self.compositor.set_layout(name)

    def set_screen_limits(self, max_fps: float | None, scale: float = 1.0) -> None:
        """Hold the screen tile to ``max_fps`` new frames a second and ``scale`` of its detail
        (``None``, 1.0: as sent), whatever its sender sends (media.screen_limits). The agent's
        camera and the avatar are never limited."""
        self.compositor.screen_limits.set(max_fps, scale)

    @property
    def encoders(self) -> Mapping[str, Any]:
        """The encoders of what the customer sees (the program's, one per codec in use)."""
        return self.program.encoders

    async def screen_shared(self, active: bool) -> None:
        """The agent started or stopped sharing: show the screen, or forget its last picture.

        With the avatar on, the screen goes beside it (``avatar_screen``) and back.
        """
        if active:
            self.set_layout("avatar_screen" if self.layout.startswith("avatar") else "screen")
        else:
            self.compositor.slot(SCREEN).clear()
            if self.layout in ("screen", "side_by_side"):
                self.set_layout("agent")
            elif self.layout == "avatar_screen":
                self.set_layout("avatar")

    # ------------------------------------------------------------ negotiation

    async def answer(self, role: Role, sdp: str) -> str:
        """Answer a browser's offer for ``role``; a new offer replaces that side's peer (a reload)."""
        if self._closed is not None:
            raise MediaError("call_ended", "this call's media is closed")
        await self._close_peer(role)
        pc, _, _ = await receive_offer(sdp, self.ice_servers, self.ice_transport_policy, self.gathering)
        try:
            sections = match(role, pc.getTransceivers())
        except SectionMismatch as exc:
            await close_peer(pc)
            raise MediaError("bad_sdp", f"{exc}; see docs/protocol.md, WebRTC") from None
        self.peers[role] = pc

        @pc.on("connectionstatechange")
        def on_state() -> None:
            logger.info("%s: %s peer %s", self.label, role, pc.connectionState)
            if self.on_peer_state is not None and self.peers.get(role) is pc:
                self.on_peer_state(role, pc.connectionState)

        try:
            if role == "agent":
                await self._wire_agent(sections)
            else:
                await self._wire_customer(sections)
            await pc.setLocalDescription(await pc.createAnswer())
            # SRTP handled as it arrives, not through aiortc's queue and task (CPU a call).
            self._direct_receive[role] = internals.receive_directly(sections["camera"].receiver.transport)
            self._round_trips[role] = ReferenceTimeReplies(
                sections["camera"].receiver.transport, internals.ssrc(sections["camera"].sender)
            )
            feedback = FeedbackSender(pc, f"{self.label} {role}")
            if feedback.start():
                self.feedback[role] = feedback
            self.missing[role] = self._missing(role, sections["camera"], sdp)
        except Exception as exc:
            await self._close_peer(role)
            raise MediaError("bad_sdp", f"the offer could not be answered: {exc}") from None
        return with_receiver_rtt(sdp, pc.localDescription.sdp)

    def _missing(self, role: Role, camera: RTCRtpTransceiver, offer: str) -> list[str]:
        """What this side's browser did not offer that the call would use (the receipt says it)."""
        missing = []
        if role not in self.feedback:
            missing.append("transport-cc")  # its upload ramps on loss only, from ~300 kbps
        if negotiated_codec(camera) != self.codec.upper():
            missing.append(self.codec.upper())
        if role == "customer":
            if not internals.negotiated_extension(camera, internals.ABS_CAPTURE_TIME_URI):
                missing.append("abs-capture-time")
            if RCVR_RTT not in offer:
                missing.append("rcvr-rtt")  # no round trip: the browser cannot time frames' capture
        return missing

    async def _wire_agent(self, sections: dict[str, RTCRtpTransceiver]) -> None:
        """Sections by name (media.sections): mic, camera, then optionally screen, customer_camera,
        customer_screen."""
        self.agent_sections = sections
        self._relay_voice(
            sections["mic"],
            self.to_customer_audio,
            self.to_agent_audio,
            "agent",
            speaks=not self.camera_sends_voice,
        )
        camera = sections["camera"]
        self._send_program(camera, "agent")
        if camera.receiver.track is not None:
            if self.camera_peer is None:
                await self._take_agent_camera(camera)
            else:
                await self._park_camera(camera)
        screen = sections.get("screen")
        if screen is not None and screen.receiver.track is not None:
            await self.compositor.attach(SCREEN, screen.receiver.track, label=self.label)
        for name, forward in (
            ("customer_camera", self.customer_camera),
            ("customer_screen", self.customer_screen),
        ):
            if name in sections:
                transceiver = sections[name]
                answer_with_codec_first(transceiver, self.codec)  # before the output takes its codec
                output = forward.output(transceiver.sender, negotiated_codec(transceiver) or "")
                self._send(transceiver, output, "agent")

    async def _wire_customer(self, sections: dict[str, RTCRtpTransceiver]) -> None:
        """Sections by name (media.sections): mic, camera (gets the composite), optionally screen."""
        self._relay_voice(sections["mic"], self.to_agent_audio, self.to_customer_audio, "customer")
        self._send_program(sections["camera"], "customer")
        for name, forward in (("camera", self.customer_camera), ("screen", self.customer_screen)):
            transceiver = sections.get(name)
            if transceiver is not None and transceiver.receiver.track is not None:
                answer_with_codec_first(transceiver, self.codec)  # the codec the agent's section takes
                await forward.attach(transceiver.receiver, negotiated_codec(transceiver) or "")

    async def _take_agent_camera(self, camera: RTCRtpTransceiver) -> None:
        """``camera``'s track is the agent's camera in the composite, and what the passthrough
        forwards, from its next keyframe (a new source must not follow the old one's frames)."""
        assert camera.receiver.track is not None
        await self.compositor.attach(AGENT, camera.receiver.track, label=self.label)
        clock, arrivals = self.compositor.times.follow_receiver(AGENT, camera.receiver)
        self.passthrough.follow(camera.receiver, negotiated_codec(camera) or "", clock, arrivals)
        if self.passthrough.wanted:
            self.passthrough.wanted = False  # what it queued came from the other source
            self.passthrough.wanted = True

    def _relay_voice(
        self,
        transceiver: RTCRtpTransceiver,
        speaking: VoiceRelay,
        hearing: VoiceRelay,
        role: Role,
        *,
        speaks: bool = True,
    ) -> None:
        """This side's microphone goes out through ``speaking`` (unless another peer speaks for
        it: then it is only kept from decoding); it hears ``hearing``."""
        if transceiver.receiver.track is not None:
            if speaks:
                speaking.attach(transceiver.receiver)
            else:
                internals.stop_decoding(transceiver.receiver)
        internals.send_stamped_payloads(transceiver.sender)  # the video senders' loop, a voice's CPU less
        self._send(transceiver, hearing.output(transceiver.sender), role)  # sent from the speaker's callback
        align_sender_reports(transceiver.sender, OPUS_RATE, hearing.capture_times)

    def _send_program(self, transceiver: RTCRtpTransceiver, role: Role) -> None:
        """Send what the customer sees (the customer's picture; the agent's preview of it)."""
        answer_with_codec_first(transceiver, self.codec)
        codec = negotiated_codec(transceiver) or self.codec.upper()
        # The customer's browser steers the bitrate; the agent's preview takes what it gets, and
        # mirrors: it is held while the picture is the agent's own camera (media.program).
        customer = role == "customer"
        viewer = self.program.viewer(transceiver.sender, codec, steers=customer, mirror=not customer)
        self._send(transceiver, viewer, role)

    def _send(self, transceiver: RTCRtpTransceiver, track: MediaStreamTrack, role: Role) -> None:
        transceiver.sender.replaceTrack(track)
        transceiver.direction = "sendrecv"  # the answer narrows it to what the offer allows
        if track.kind == "video":
            answer_with_codec_first(transceiver, self.codec)
            # The program's encoder times its encodes (media.program); senders only packetise it.
            tune_video_sender(transceiver.sender, self.bitrate)
            if not isinstance(track, SlotTrack):
                times = self.compositor.times
                sent = times.frame_sent if role == "customer" else None
                forwarded = times.was_forwarded  # those keep the camera's spacing
                align_sender_reports(transceiver.sender, 90000, times.capture_times, sent, True, forwarded)
        self._outgoing[role].append(track)

    # ---------------------------------------------------------------- closing

    async def _close_peer(self, role: Role) -> None:
        pc = self.peers.pop(role, None)
        if role == "customer":
            self.to_agent_audio.detach()
        else:
            self.agent_sections = {}  # a closed peer's: nothing to come back to
            if not self.camera_sends_voice:
                self.to_customer_audio.detach()
        round_trips = self._round_trips.pop(role, None)
        if round_trips is not None:
            round_trips.stop()
        direct = self._direct_receive.pop(role, None)
        if direct is not None:
            await direct.stop()
        feedback = self.feedback.pop(role, None)
        if feedback is not None:
            await feedback.stop()
        for track in self._outgoing[role]:
            track.stop()
        self._outgoing[role].clear()
        if pc is not None:
            await close_peer(pc)

    async def close(self) -> None:
        """Close both peers, every drain and pump, and the compositor. A second call awaits the first."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = asyncio.get_running_loop().create_future()
        try:
            await self.release_camera()  # closed: nothing is given back
            await self.release_monitor()
            for role in ROLES:
                await self._close_peer(role)
            self.to_agent_audio.detach()
            self.to_customer_audio.detach()
            await self.program.close()
            await self.compositor.close()
            await self.customer_camera.close()
            await self.customer_screen.close()
            # The call's codecs and frames are freed by now: hand their pages back (see media.heap).
            # A trim takes 3-7 ms: off the event loop, where other calls' frames are composed.
            await asyncio.to_thread(release_free_memory)
        finally:
            self._closed.set_result(None)
