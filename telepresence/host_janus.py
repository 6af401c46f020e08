"""The live host's program pushed into a Janus Streaming-plugin mountpoint (``host_janus_rtp``).

A show has more viewers than one process can send to: Janus carries them. While the host is
live, its program (the picture encoded ONCE, the very packets its WHEP viewers get) and its
voice (the operator's Opus as it came) go to the mountpoint's ports as plain RTP. The payload
types are fixed, and the README's mountpoint config says the same:
:data:`VIDEO_PT` (H.264 ``profile-level-id=42e01f;packetization-mode=1``, or VP8, as the
server's ``video_codec``) and :data:`AUDIO_PT` (Opus, 48 kHz, two channels).
"""

from __future__ import annotations

import logging

from aiortc import RTCRtpCodecParameters

from media.program import Program
from media.rtp_push import RtpPush
from media.voice_fanout import VoiceFanout
from telepresence.janus_target import JanusTarget

__all__ = ["AUDIO_PT", "VIDEO_PT", "JanusFeed", "JanusTarget", "mountpoint_codecs"]

logger = logging.getLogger(__name__)

VIDEO_PT = 96
AUDIO_PT = 111
H264_FMTP = {"profile-level-id": "42e01f", "packetization-mode": "1", "level-asymmetry-allowed": "1"}


def mountpoint_codecs(video_codec: str) -> tuple[RTCRtpCodecParameters, RTCRtpCodecParameters]:
    """The video and audio codecs (payload types included) the mountpoint is configured with."""
    video = RTCRtpCodecParameters(
        mimeType=f"video/{video_codec}",
        clockRate=90000,
        payloadType=VIDEO_PT,
        parameters=dict(H264_FMTP) if video_codec == "H264" else {},
    )
    audio = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=AUDIO_PT)
    return video, audio


class JanusFeed:
    """The host's program and voice as RTP to a Janus mountpoint, from :meth:`start` to :meth:`stop`."""

    def __init__(
        self, program: Program, voice: VoiceFanout, target: JanusTarget, video_codec: str, label: str
    ) -> None:
        video, audio = mountpoint_codecs(video_codec)
        self.target = target
        # A viewer of the program that steers nothing (Janus reports no estimate back).
        self.video = RtpPush(
            program.viewer(None, video_codec, steers=False),
            (target.host, target.video_port),
            video,
            ask_keyframe=program.request_keyframe,
            label=f"{label} janus video",
        )
        self.audio = RtpPush(
            voice.output(), (target.host, target.audio_port), audio, label=f"{label} janus audio"
        )

    async def start(self) -> None:
        try:
            await self.video.start()
            await self.audio.start()
        except BaseException:
            await self.stop()
            raise
        target = self.target
        logger.info("janus feed to %s:%d/%d started", target.host, target.video_port, target.audio_port)

    async def stop(self) -> None:
        await self.video.stop()
        await self.audio.stop()
