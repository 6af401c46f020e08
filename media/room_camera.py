"""The agent's camera (and microphone) from another peer than their browser's, and back.

An agent may publish their picture with a tool (OBS, a hardware encoder: WHIP); the server
relays it to the room of each of the agent's calls on a peer of its own, which the room
answers here (:meth:`CameraFromElsewhere.answer_camera`). From then on that peer's video is
the agent's camera in the composite and its audio (if it sends any) the agent's voice to
the customer; the browser's camera is parked (drained, so its decoder's queue cannot grow,
and ready to come back at once) and its microphone silenced. :meth:`release_camera` gives
the browser's back, asking it for a keyframe. A browser that reloads meanwhile is parked
again. The switch is a change of source, never a renegotiation with either browser.

A mixin of :class:`media.room.Room`, kept apart so the room stays one idea.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver

from media import aiortc_internals as internals
from media.answer import MediaError, close_peer, receive_offer
from media.encoded import is_keyframe
from media.layout import AGENT
from media.tracks import FrameSlot, TrackDrain

if TYPE_CHECKING:
    from media.room import Room

logger = logging.getLogger(__name__)


class CameraFromElsewhere:
    """Room methods: the agent's camera and microphone from another peer (see the module)."""

    camera_peer: RTCPeerConnection | None = None
    camera_sends_voice = False  # the other peer's audio is the agent's voice
    _parked: TrackDrain | None = None

    async def answer_camera(self: Room, sdp: str) -> str:  # type: ignore[misc]
        """Answer a peer that sends the agent's camera (sendonly video, optionally audio).
        Raises MediaError; a second one replaces the first."""
        if self._closed is not None:
            raise MediaError("call_ended", "this call's media is closed")
        # The other peer is this server's relay on the same machine: host candidates do, and a
        # relay-only policy (meant for browsers' networks) would only add a detour.
        pc, audio, video = await receive_offer(sdp, (), "all", self.gathering)
        cameras = [t for t in video if t.receiver.track is not None]
        mics = [t for t in audio if t.receiver.track is not None]
        try:
            if not cameras:
                raise MediaError("no_video", "the camera's offer sends no video")
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await close_peer(pc)
            raise exc if isinstance(exc, MediaError) else MediaError("bad_sdp", f"{exc}") from None
        previous, self.camera_peer = self.camera_peer, pc
        if previous is not None:
            await close_peer(previous)
        browser = self._browser_sections()
        if previous is None and browser.get("camera") is not None:
            await self._park_camera(browser["camera"])
        await self._take_agent_camera(cameras[0])
        self.camera_sends_voice = bool(mics)
        if mics:
            self.to_customer_audio.attach(mics[0].receiver)
        elif browser.get("mic") is not None:
            self.to_customer_audio.attach(browser["mic"].receiver)
        logger.info("%s: the agent's camera comes from another peer", self.label)
        return pc.localDescription.sdp

    async def release_camera(self: Room) -> None:  # type: ignore[misc]
        """The other peer's camera goes; the browser's comes back (if the agent's browser is here)."""
        pc, self.camera_peer = self.camera_peer, None
        if pc is None:
            return
        self.camera_sends_voice = False
        await close_peer(pc)
        parked, self._parked = self._parked, None
        if parked is not None:
            await parked.stop()
        if self._closed is not None:
            return
        browser = self._browser_sections()
        camera, mic = browser.get("camera"), browser.get("mic")
        if camera is not None:
            await self._take_agent_camera(camera)
            await _ask_for_keyframe(camera.receiver)
        else:
            await self.compositor.detach(AGENT)  # the placeholder, with the agent's name
        if mic is not None:
            self.to_customer_audio.attach(mic.receiver)
        else:
            self.to_customer_audio.detach()
        logger.info("%s: the agent's camera is their browser's again", self.label)

    def _browser_sections(self: Room) -> dict[str, RTCRtpTransceiver]:  # type: ignore[misc]
        """The agent browser's camera and mic that send, while its peer is here."""
        if "agent" not in self.peers:
            return {}
        return {
            name: transceiver
            for name, transceiver in self.agent_sections.items()
            if name in ("camera", "mic") and transceiver.receiver.track is not None
        }

    async def _park_camera(self: Room, camera: RTCRtpTransceiver) -> None:  # type: ignore[misc]
        """The browser's camera is not shown: drained (its decoder's queue would grow) and kept
        decoding from its next keyframe, ready to come back; its frames no longer reach the
        passthrough, which follows the other camera now."""
        buffer = internals.jitter_buffer(camera.receiver)
        if buffer is not None and hasattr(buffer, "on_frame"):
            buffer.on_frame = None
            if buffer.forward_only:  # it was forwarded as it came: decode again from a keyframe
                buffer.forward_only = False
                buffer.decode_keyframes = None
                codec = self.passthrough.codec or ""
                buffer.decode_from = lambda frame: is_keyframe(codec, frame.data)
        if self._parked is not None:
            await self._parked.stop()
        assert camera.receiver.track is not None
        self._parked = TrackDrain(
            camera.receiver.track, FrameSlot("parked camera"), label=f"{self.label} parked"
        )


async def _ask_for_keyframe(receiver: RTCRtpReceiver) -> None:
    """A PLI to whatever ``receiver`` receives (its SSRC from its statistics)."""
    for stats in (await receiver.getStats()).values():
        if stats.type == "inbound-rtp" and getattr(stats, "ssrc", None) is not None:
            await internals.send_pli(receiver, stats.ssrc)
            return
