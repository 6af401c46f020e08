"""The live avatar host's two standard doors: WHEP out to viewers, WHIP in from the studio.

- ``POST /whep/host``: the host's program, the avatar's picture encoded ONCE for every viewer
  (media.program) and the operator's voice as it came (media.voice_fanout). Open to anyone
  unless ``whep_viewer_token_required``; then a viewer or operator token.
- ``POST /whip/studio`` (operator token): the stream is the studio, as the studio page's camera
  and microphone are: its picture drives the avatar's face, its sound the mouth (and the
  viewers hear it). One studio at a time: the latest takes over.

The HTTP side (tokens, limits, sessions, errors) is telepresence.media_doors.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from media.answer import answer_with_codec_first
from media.peers import negotiated_codec
from telepresence.door_sessions import RETRY_AFTER_S, DoorError, Opened, Session
from telepresence.hosts import Host, HostDesk

ENCODED_CODECS = ("VP8", "H264")  # what media.program can encode


def _running(desk: HostDesk, status: int) -> Host:
    if desk.host is None:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
        raise DoorError(status, "no avatar host is live (an operator starts it: host_start)", headers)
    return desk.host


def sending(transceivers: list[RTCRtpTransceiver]) -> list[RTCRtpTransceiver]:
    """The sections whose offer sends media (a WHIP client's sendonly ones)."""
    return [t for t in transceivers if t.receiver.track is not None]


class HostViewerDoor:
    """``/whep/host``: the live host's program for any number of viewers."""

    roles = ("viewer", "operator")
    publishes = False

    def __init__(self, desk: HostDesk, *, codec: str, token_required: bool) -> None:
        self._desk = desk
        self._codec = codec
        self._token_required = token_required

    def token_required(self) -> bool:
        return self._token_required

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        host = _running(self._desk, 503)
        picture = video[0]
        answer_with_codec_first(picture, self._codec)
        codec = negotiated_codec(picture)
        if codec not in ENCODED_CODECS:
            raise DoorError(422, f"offer VP8 or H264 video to receive the host (offered: {codec})")
        host.watch(picture, codec, audio)

        async def undo() -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.sender.track is not None:
                    transceiver.sender.track.stop()
            await host.unwatched()

        return Opened(alive=lambda: self._desk.host is host, undo=undo)


class StudioDoor:
    """``/whip/studio``: an operator's encoder drives the live host, as the studio page does."""

    roles = ("operator",)
    publishes = True

    def __init__(self, desk: HostDesk) -> None:
        self._desk = desk

    def token_required(self) -> bool:
        return True

    async def open(
        self,
        session: Session,
        pc: RTCPeerConnection,
        audio: list[RTCRtpTransceiver],
        video: list[RTCRtpTransceiver],
    ) -> Opened:
        host = _running(self._desk, 409)
        cameras = sending(video)
        if not cameras:
            raise DoorError(422, "the offer sends no video: the studio's picture drives the avatar")
        mics = sending(audio)
        await host.take_studio(pc, cameras[0], mics[0] if mics else None)
        if session.claims is not None:
            host.operator = session.claims.name

        async def undo() -> None:
            await host.release_studio(pc)

        return Opened(alive=lambda: self._desk.host is host and host.studio is pc, undo=undo)
