"""``POST /whip/agent`` (an agent token): the stream is that agent's camera and microphone in
their calls instead of the browser's (telepresence.agent_cameras), until the session ends."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from media.peers import negotiated_codec
from telepresence.agent_cameras import AgentCameras
from telepresence.door_sessions import DoorError, Opened, Session
from telepresence.host_doors import ENCODED_CODECS, sending


class AgentCameraDoor:
    """An agent's encoder as their camera; their console says "camera from WHIP"."""

    roles = ("agent",)
    publishes = True

    def __init__(self, cameras: AgentCameras) -> None:
        self.cameras = cameras

    def token_required(self) -> bool:
        return True

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        assert session.claims is not None  # token_required
        cameras = sending(video)
        if not cameras:
            raise DoorError(422, "the offer sends no video: it is the agent's camera")
        codec = negotiated_codec(cameras[0])
        if codec not in ENCODED_CODECS:
            raise DoorError(422, f"send VP8 or H264 video (offered: {codec})")
        mics = sending(audio)
        feed = await self.cameras.start(session.claims.name, cameras[0], mics[0] if mics else None)

        async def undo() -> None:
            await self.cameras.stop(feed)

        return Opened(alive=lambda: self.cameras.feeds.get(feed.agent) is feed, undo=undo)

    async def close(self) -> None:
        await self.cameras.close()
