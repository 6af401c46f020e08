"""A supervisor's tap on a call: what the customer sees and both voices out, a whisper in.

The supervisors' own peers live with the server's control plane; the room, maybe in a media
worker process, answers one loopback peer per call for all of them (the "monitor"). Its offer
holds, in this order: a video section receiving the customer's picture (one more viewer of
the room's media.program: packetised, never encoded again), an audio section receiving the
agent's voice, one receiving the customer's voice (both forwarded as they came), and
optionally a third that sends the supervisors' whisper, which only the agent hears
(media.whisper). Neither browser renegotiates or is told by the media: the control plane says
to the agent that a supervisor is there (the documented indicator).

A mixin of :class:`media.room.Room`, kept apart so the room stays one idea.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from media.answer import MediaError, answer_with_codec_first, close_peer, receive_offer
from media.peers import negotiated_codec, tune_video_sender

if TYPE_CHECKING:
    from media.room import Room

logger = logging.getLogger(__name__)


class CallMonitor:
    """Room methods: one monitoring peer (see the module)."""

    monitor_peer: RTCPeerConnection | None = None
    _monitor_tracks: list[MediaStreamTrack] | None = None
    _monitor_answer: str | None = None  # what the monitor was answered: who it is, to release_monitor

    async def answer_monitor(self: Room, sdp: str) -> str:  # type: ignore[misc]
        """Answer the monitor's offer (video, agent's voice, customer's voice, optional whisper).
        Raises MediaError; a second one replaces the first."""
        self._refuse_monitor_if_closed()
        # The other peer is this server's control plane on the same machine: host candidates do.
        pc, audio, video = await receive_offer(sdp, (), "all", self.gathering)
        tracks: list[MediaStreamTrack] = []
        try:
            self._refuse_monitor_if_closed()  # the room may have closed while the offer was read
            if len(audio) < 2:
                raise MediaError("bad_sdp", "a monitor offers video, the agent's voice, the customer's voice")
            picture = video[0]
            answer_with_codec_first(picture, self.codec)
            codec = negotiated_codec(picture) or self.codec.upper()
            tracks = [
                self.program.viewer(picture.sender, codec, steers=False),  # the customer steers, not us
                self.to_customer_audio.output(),  # the agent's voice
                self.to_agent_audio.plain_output(),  # the customer's voice, without any whisper
            ]
            for transceiver, track in zip((picture, audio[0], audio[1]), tracks, strict=True):
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"  # the answer narrows it to what the offer allows
            tune_video_sender(picture.sender, self.bitrate)
            await pc.setLocalDescription(await pc.createAnswer())
            await self.release_monitor()
            # Closed meanwhile: close() has released the monitors it knew of, not this one.
            self._refuse_monitor_if_closed()
        except Exception as exc:
            for track in tracks:
                track.stop()
            await close_peer(pc)
            raise exc if isinstance(exc, MediaError) else MediaError("bad_sdp", f"{exc}") from None
        self.monitor_peer, self._monitor_tracks = pc, tracks
        self._monitor_answer = pc.localDescription.sdp
        whisper = [t for t in audio[2:] if t.receiver.track is not None]
        if whisper:
            self.to_agent_audio.whisper.attach(whisper[0].receiver)
        logger.info("%s: a supervisor's monitor is on the call", self.label)
        return self._monitor_answer

    def _refuse_monitor_if_closed(self: Room) -> None:  # type: ignore[misc]
        if self._closed is not None:
            raise MediaError("call_ended", "this call's media is closed")

    async def release_monitor(self: Room, answer: str | None = None) -> None:  # type: ignore[misc]
        """The monitor goes: its tracks stop, no whisper reaches the agent. ``answer``: only the
        monitor that was given this answer goes (a newer one, which replaced it, stays)."""
        if answer is not None and answer != self._monitor_answer:
            return
        pc, self.monitor_peer, self._monitor_answer = self.monitor_peer, None, None
        tracks, self._monitor_tracks = self._monitor_tracks or [], None
        if pc is None:
            return
        self.to_agent_audio.whisper.detach()
        self.to_agent_audio.whisper.pending.clear()
        for track in tracks:
            track.stop()
        await close_peer(pc)
        logger.info("%s: the supervisors' monitor left the call", self.label)
