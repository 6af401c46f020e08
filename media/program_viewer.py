"""One viewer's share of the customer's picture (media.program): its encoded frames in a short
queue that skips to a keyframe when the viewer falls behind, and what its browser says back
(the estimate it can receive, the share of packets it lost) for the program's bitrate and the
agent camera's cap."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
from aiortc import RTCRtpSender

from media import aiortc_internals as internals
from media.encoded import PacketQueueTrack
from media.packetized import PacketizedFrame

if TYPE_CHECKING:
    from media.program import Program

VIEWER_QUEUE = 2  # encoded frames a viewer may have waiting before it skips to a keyframe


def steering_estimate(viewers: list[ProgramViewer]) -> float | None:
    """The lowest of what the steering viewers' browsers say they can receive (their REMB)."""
    estimates = [e for e in (v.estimate() for v in viewers if v.steers) if e is not None]
    return min(estimates) if estimates else None


class ProgramViewer(PacketQueueTrack):
    """One viewer's share of a :class:`Program`: its packets, skipping to a keyframe when behind."""

    def __init__(
        self, program: Program, sender: RTCRtpSender | None, codec: str, steers: bool, mirror: bool = False
    ) -> None:
        super().__init__(VIEWER_QUEUE)
        self.codec = codec
        self.steers = steers
        self.mirror = mirror
        self._program = weakref.ref(program)  # the program's pump holds the viewers, not back
        self._sender: Callable[[], RTCRtpSender | None] = (
            weakref.ref(sender) if sender is not None else lambda: None
        )
        self.has_sender = sender is not None
        self._report_at: object = None

    def offer(self, packet: av.Packet | PacketizedFrame) -> bool:  # type: ignore[override]
        needs_keyframe = super().offer(packet)  # type: ignore[arg-type]  # it reads is_keyframe
        if needs_keyframe and (program := self._program()) is not None and not program.keyframe_due:
            program.request_keyframe()
        return needs_keyframe

    async def loss(self) -> float | None:
        """The share of packets lost in the viewer's browser's receiver report, if a new one came
        since the last call (None: none came)."""
        sender = self._sender()
        if sender is None:
            return None
        for stats in (await sender.getStats()).values():
            if stats.type == "remote-inbound-rtp" and stats.timestamp != self._report_at:
                self._report_at = stats.timestamp  # aiortc's: when the report came
                lost = getattr(stats, "fractionLost", None)  # aiortc's is the report's: 0-255
                return lost / 256 if lost is not None else None
        return None

    def estimate(self) -> float | None:
        sender = self._sender()
        governor = getattr(internals.encoder(sender), "governor", None) if sender is not None else None
        return getattr(governor, "last_estimate", None)
