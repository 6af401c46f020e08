"""The brand's live avatar host: one avatar, driven by an operator, shown in every call.

An operator (role ``operator``) starts the host with a look, drives it with their
face and voice from the studio page (their camera and microphone reach only the
server: the face driver turns landmarks into the avatar's rig, the real face never
reaches a customer) and with script commands, switches its look, and hands the
calls it greets over to the human agents. Calls take the host's picture through an
:class:`~media.relay.OnDemandRelay` (one reader of the avatar track, a track per
consumer, and no reading, so no rendering, while nobody consumes), so one host greets
many customers. Its program for WHEP viewers (the
avatar and the operator's voice) is encoded once for all of them (media.program,
media.voice_fanout); the studio may also be a WHIP publisher (OBS, GStreamer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack

from media.answer import AIOICE_DEFAULTS, IceGathering, receive_offer
from media.avatar.controller import AvatarController
from media.avatar.drivers.face import FaceDriver
from media.avatar.drivers.script_commands import ScriptError
from media.avatar.events import AvatarEvent
from media.avatar.spec import AvatarSpec, SpecError, load_spec, loads_spec, shipped_looks
from media.avatar.track import AvatarTrack
from media.congestion import FeedbackSender
from media.peers import Bitrate, tune_video_sender
from media.program import Program
from media.relay import OnDemandRelay, RelayedTrack
from media.sections import position_of_kind
from media.voice_fanout import VoiceFanout
from telepresence.host_janus import JanusFeed, JanusTarget
from telepresence.protocol import ProtocolError

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]
TICK_S = 0.1  # how often an unwatched host's script and events advance


def resolve_look(name: str | None = None, text: str | None = None, text_format: str = "toml") -> AvatarSpec:
    """A shipped look by name, or a spec given as text. Never a path: operators name no server files."""
    try:
        if text is not None:
            return loads_spec(text, format=text_format)
        looks = shipped_looks()
        if name not in looks:
            raise ProtocolError(
                "invalid_spec", f"unknown look {name!r}: use one of {', '.join(sorted(looks))}"
            )
        return load_spec(looks[name])
    except SpecError as exc:
        raise ProtocolError("invalid_spec", str(exc)) from None


class Host:
    """One live avatar host and the operator's studio connection that drives it."""

    def __init__(
        self,
        host_id: str,
        operator: str,
        look: str,
        spec: AvatarSpec,
        ice_servers: list[RTCIceServer],
        ice_transport_policy: str = "all",
        gathering: IceGathering = AIOICE_DEFAULTS,
    ) -> None:
        self.id = host_id
        self.operator = operator
        self.look = look
        self.face = FaceDriver()
        self.track = AvatarTrack(spec, controller=AvatarController(spec, face=self.face))
        self._relay = OnDemandRelay(self.track, label=f"{host_id} avatar")
        self._preview: MediaStreamTrack | None = None  # the studio page's, stopped with the studio
        self._viewers: list[RelayedTrack] = []
        self._own: list[MediaStreamTrack] = []  # the studio previews, the WHEP program
        self._ice_servers = ice_servers
        self._ice_transport_policy = ice_transport_policy
        self._gathering = gathering
        self._studio: RTCPeerConnection | None = None
        self._feedback: FeedbackSender | None = None
        # The program WHEP viewers get: the avatar encoded once, the studio's voice as it came.
        self.voice = VoiceFanout(f"{host_id} voice")
        self._program: Program | None = None
        self.janus: JanusFeed | None = None  # the program pushed to Janus (host_janus_rtp)
        self._listeners: list[Listener] = []
        self.track.controller.subscribe(self._on_event)
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name=f"{host_id} ticker")

    async def _tick(self) -> None:
        """Keep the host's timeline moving while nobody watches: scripts advance, events flow."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.controller.rig_at(self.track.now())
            except Exception:
                # A driver bug must not stop the host's clock; the renderer will show it too.
                logger.exception("%s: advancing the host failed", self.id)

    @property
    def controller(self) -> AvatarController:
        return self.track.controller

    @property
    def viewers(self) -> int:
        """Calls showing the host now (the studio's own preview is not a viewer)."""
        return sum(1 for v in self._viewers if v.active)

    def status(self) -> dict[str, Any]:
        return {
            "type": "host_status",
            "running": True,
            "host_id": self.id,
            "spec": self.look,
            "viewers": self.viewers,
        }

    # ---------------------------------------------------------------- control

    def command(self, command: str | dict[str, Any]) -> None:
        try:
            self.controller.submit(command, self.track.now())
        except ScriptError as exc:
            raise ProtocolError("invalid_command", str(exc)) from None

    def script(self, text: str) -> None:
        try:
            self.controller.script.load(text, self.track.now())
        except ScriptError as exc:
            where = (
                f"line {exc.line}: "
                if getattr(exc, "line", None) and f"line {exc.line}" not in str(exc)
                else ""
            )
            raise ProtocolError("invalid_command", f"{where}{exc}") from None

    def interrupt(self) -> None:
        self.controller.interrupt(self.track.now())

    def set_look(self, look: str, spec: AvatarSpec) -> None:
        """Switch the look; the caller resolved ``spec`` first, so a bad one changed nothing."""
        self.track.set_spec(spec)
        self.controller.spec = spec
        self.look = look

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _on_event(self, event: AvatarEvent) -> None:
        message = {"type": "host_event", "kind": event.kind, "text": event.text, "source": event.source}
        if event.kind == "state":
            message["state"] = event.text
        for listener in list(self._listeners):
            listener(message)

    # ------------------------------------------------------------------ media

    def viewer_track(self, *, counted: bool = True) -> MediaStreamTrack:
        """A proxy of the avatar for one more consumer (a call's compositor, the studio preview)."""
        proxy = self._relay.subscribe()
        if counted:
            # A call's compositor never ends its input: a track nobody reads any more is gone.
            self._viewers = [v for v in self._viewers if v.active]
            self._viewers.append(proxy)
        else:  # the studio previews and WHEP programs, one each time viewers come back: pruned too
            self._own = [v for v in self._own if v.readyState == "live"]
            self._own.append(proxy)
        return proxy

    async def studio_answer(self, sdp: str) -> str:
        """Answer the studio's offer: its camera drives the face, its mic the voice; back goes the avatar."""
        await self._close_studio()
        pc, audio, video = await receive_offer(
            sdp, self._ice_servers, self._ice_transport_policy, self._gathering
        )
        # The studio's sections, by name (media/sections.py, role "operator").
        camera = video[position_of_kind("operator", "camera")]
        mic = audio[position_of_kind("operator", "mic")] if audio else None
        await self.take_studio(pc, camera, mic)
        # Closing the studio's peer does not end the track it sent: _close_studio stops it,
        # or the avatar would go on rendering for it.
        self._preview = self.viewer_track(counted=False)
        camera.sender.replaceTrack(self._preview)
        camera.direction = "sendrecv"
        tune_video_sender(camera.sender)
        await pc.setLocalDescription(await pc.createAnswer())
        # The answer agreed to transport-cc where the studio's browser offered it: feedback is owed.
        self._feedback = FeedbackSender(pc, "studio")
        self._feedback.start()
        return pc.localDescription.sdp

    @property
    def studio(self) -> RTCPeerConnection | None:
        """The studio's peer connection now (the studio page's, or a WHIP publisher's)."""
        return self._studio

    async def take_studio(
        self, pc: RTCPeerConnection, camera: RTCRtpTransceiver, mic: RTCRtpTransceiver | None
    ) -> None:
        """``pc`` (its offer applied) is the studio from now on, replacing any other: its camera
        drives the face, its microphone the mouth, and WHEP viewers hear that microphone."""
        await self._close_studio()
        self._studio = pc
        if camera.receiver.track is not None:
            self.face.drive(camera.receiver.track)
        if mic is not None and mic.receiver.track is not None:
            self.controller.voice.drive(mic.receiver.track)
            self.voice.attach(mic.receiver, decode=True)  # the mouth's driver decodes it

    async def release_studio(self, pc: RTCPeerConnection) -> None:
        """``pc`` stops being the studio, if it still is (a WHIP publisher's session ended)."""
        if self._studio is pc:
            await self._close_studio()

    def program(self) -> Program:
        """The host's picture for WHEP viewers, encoded once for every one of them."""
        if self._program is None:
            self._program = Program(
                self.viewer_track(counted=False), bitrate=Bitrate(), label=f"{self.id} program"
            )
        return self._program

    async def unwatched(self) -> None:
        """A WHEP viewer left: with none left, the program stops (its reader of the avatar too,
        which would otherwise keep rendering for nobody)."""
        program = self._program
        if program is not None and not program.watched:
            self._program = None
            await program.close()
            program.composite.stop()

    def watch(self, video: RTCRtpTransceiver, codec: str, audio: list[RTCRtpTransceiver]) -> None:
        """One WHEP viewer: the program on ``video`` (negotiated ``codec``), the voice on ``audio``."""
        # A broadcast is not steered by one viewer's link: a viewer behind skips to a keyframe.
        video.sender.replaceTrack(self.program().viewer(video.sender, codec, steers=False))
        video.direction = "sendonly"
        tune_video_sender(video.sender)
        for transceiver in audio:
            transceiver.sender.replaceTrack(self.voice.output())
            transceiver.direction = "sendonly"

    async def _close_studio(self) -> None:
        self.voice.detach()
        pc, self._studio = self._studio, None
        feedback, self._feedback = self._feedback, None
        preview, self._preview = self._preview, None
        if preview is not None:
            preview.stop()
        if feedback is not None:
            await feedback.stop()
        await self.face.stop()
        await self.controller.voice.stop()
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        try:
            if self.janus is not None:
                await self.janus.stop()
        finally:  # whatever the push did, the host's own parts close
            self._ticker.cancel()
            await asyncio.wait({self._ticker})
            await self._close_studio()
            if self._program is not None:
                await self._program.close()
            self.voice.close()
            await self._relay.close()  # ends every consumer's track (calls', previews', the program's)
            self.track.stop()
            with contextlib.suppress(Exception):
                self.face.close()


class HostDesk:
    """The server's live host, if one is running (one per server: the brand's greeter)."""

    def __init__(
        self,
        ice_servers_for: Callable[[str], list[RTCIceServer]] = lambda host_id: [],
        ice_transport_policy: str = "all",
        gathering: IceGathering = AIOICE_DEFAULTS,
        *,
        janus: JanusTarget | None = None,
        video_codec: str = "H264",
    ) -> None:
        self.host: Host | None = None
        self._janus = janus  # where a live host's program goes as RTP, if anywhere
        self._video_codec = video_codec
        # A host's own peers' ICE servers, for its id: TURN credentials minted when it starts.
        self._ice_servers_for = ice_servers_for
        self._ice_transport_policy = ice_transport_policy
        self._gathering = gathering
        self._count = 0

    async def start(self, operator: str, look: str) -> Host:
        if self.host is not None:
            raise ProtocolError(
                "out_of_order", f"a host is already running (started by {self.host.operator})"
            )
        spec = resolve_look(look)
        self._count += 1
        host_id = f"host-{self._count}"
        self.host = Host(
            host_id,
            operator,
            look,
            spec,
            self._ice_servers_for(host_id),
            self._ice_transport_policy,
            self._gathering,
        )
        logger.info("%s started by %s with look %s", self.host.id, operator, look)
        if self._janus is not None:
            await self._feed_janus(self.host, self._janus)
        return self.host

    async def _feed_janus(self, host: Host, target: JanusTarget) -> None:
        feed = JanusFeed(host.program(), host.voice, target, self._video_codec, host.id)
        try:
            await feed.start()
        except OSError:
            # Janus's name did not resolve: the host goes on for its calls and WHEP viewers.
            logger.exception("%s: cannot push to Janus at %s", host.id, target.host)
            return
        host.janus = feed

    def running(self) -> Host:
        if self.host is None:
            raise ProtocolError("out_of_order", "no host is running: send host_start first")
        return self.host

    async def stop(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            logger.info("%s stopped", host.id)
            await host.close()

    async def close(self) -> None:
        await asyncio.shield(self.stop())
