"""Test and benchmark helpers that users of ``media`` need too: real loopback peers, fake tracks.

:class:`LoopbackCall` wires two real aiortc ``RTCPeerConnection`` objects to each other
on 127.0.0.1 (``RTCConfiguration(iceServers=[])``: host candidates only, first frame
in ~0.1 s), so tests and benchmarks exercise real RTP, real encoders and real decoders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from media.peers import Bitrate, enable_low_latency_receive, prefer_codec, tune_video_sender
from media.sources import ScreenTrack, TestCardTrack
from media.tracks import FrameSlot, TrackDrain

logger = logging.getLogger(__name__)

__all__ = ["LoopbackCall", "ScreenTrack", "TestCardTrack"]


class LoopbackCall:
    """A sender peer and a receiver peer on loopback, with one drain + slot per received video track.

    Args:
        tracks: what the sender sends (video or audio tracks), in order.
        codec: the video codec to prefer ("VP8" or "H264").
        low_latency: complete received frames on the marker bit (see :mod:`media.peers`).
        tuned: send with the tuned encoders (x264 preset, VP8 pict_type, ``bitrate`` range);
            ``False`` is stock aiortc.
        bitrate: the tuned encoders' bitrate range.
        into: slots to drain the received video tracks into, in order (a compositor's
            input slots, say); tracks beyond these get fresh slots.
        drain: ``False`` leaves received tracks undrained, for a caller that reads (or
            forwards) them itself; something must read them, or aiortc queues grow.
        label: a tag for log lines.

    Use as ``async with LoopbackCall([track]) as call:`` then read ``call.slots[i]``; or call
    :meth:`start` and :meth:`close` yourself. Received video goes into ``call.slots`` (one
    :class:`~media.tracks.FrameSlot` per sent video track, in order); ``call.received``
    holds the raw remote tracks.
    """

    def __init__(
        self,
        tracks: Sequence[MediaStreamTrack],
        *,
        codec: str = "VP8",
        low_latency: bool = True,
        tuned: bool = True,
        bitrate: Bitrate | None = None,
        into: Sequence[FrameSlot] = (),
        drain: bool = True,
        label: str = "loopback",
    ) -> None:
        self.tracks = list(tracks)
        self.codec = codec
        self.low_latency = low_latency
        self.tuned = tuned
        self.bitrate = bitrate
        self.label = label
        self._into = list(into)
        self._drain = drain
        self.sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received: list[MediaStreamTrack] = []
        self.slots: list[FrameSlot] = []
        self.drains: list[TrackDrain] = []
        self._closed: asyncio.Future[None] | None = None

    async def start(self) -> LoopbackCall:
        """Negotiate (offer from the sender, answer from the receiver) and start draining."""
        for track in self.tracks:
            transceiver = self.sender.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                prefer_codec(transceiver, self.codec)
                if self.tuned:
                    tune_video_sender(transceiver.sender, self.bitrate)

        @self.receiver.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.received.append(track)
            if track.kind == "video" and self._drain:
                index = len(self.slots)
                slot = self._into[index] if index < len(self._into) else FrameSlot(f"{self.label}-{index}")
                self.slots.append(slot)
                self.drains.append(TrackDrain(track, slot, label=f"{self.label} {slot.name}"))

        if self.low_latency:
            enable_low_latency_receive(self.receiver)
        await self.sender.setLocalDescription(await self.sender.createOffer())
        await self.receiver.setRemoteDescription(self.sender.localDescription)
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        await self.sender.setRemoteDescription(self.receiver.localDescription)
        return self

    async def wait_frames(self, count: int = 1, index: int = 0, timeout: float = 10.0) -> FrameSlot:  # noqa: ASYNC109 - test helper
        """Wait until received video track ``index`` has delivered ``count`` frames."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.slots) <= index or self.slots[index].received < count:
            if loop.time() > deadline:
                got = self.slots[index].received if len(self.slots) > index else 0
                raise TimeoutError(f"{self.label}: {got}/{count} frames on track {index}")
            if len(self.slots) > index:
                slot = self.slots[index]
                await slot.wait_newer(slot.version, min(0.1, deadline - loop.time()))
            else:
                await asyncio.sleep(0.01)
        return self.slots[index]

    async def close(self) -> None:
        """Stop the drains and close both peers; a second call waits for the first."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = asyncio.get_running_loop().create_future()
        try:
            for drain in self.drains:
                await drain.stop()
            await self.sender.close()
            await self.receiver.close()
        finally:
            self._closed.set_result(None)

    async def __aenter__(self) -> LoopbackCall:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
