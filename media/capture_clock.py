"""One clock for a call's streams: RTP timestamps mapped to the capture time of the agent's media.

A browser lines up audio and video of one media stream by the RTCP sender reports (SR) of
each: an SR says "RTP timestamp T was (captured at) NTP time N". aiortc's senders pair each
stream's last RTP timestamp with the moment they sent it, so the customer's browser lined
up what the server SENT together: the agent's voice, which waited in the audio path, came
out ~85-90 ms late against their lips (measured in Chromium). Here:

- :class:`CaptureClock` learns a received stream's mapping from its sender's SRs (the agent's
  browser puts its audio and video on one capture clock), and
- :func:`align_sender_reports` rewrites a server sender's SRs so its RTP timestamps map to
  the capture time of the media each packet carries, as the agent's own browser would.

NTP times are read as seconds of the Unix epoch; both ends' reports use their own wall
clock, and an offset between the machines' clocks is the same for audio and video, so it
cancels out of the sync.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RtcpSrPacket, RtpPacket

from media import aiortc_internals as internals
from media.receipt import LatencyReceipt

NTP_TO_UNIX = 2_208_988_800
RTP_MODULO = 1 << 32
logger = logging.getLogger(__name__)

KEEP = 128  # capture times remembered per stream: a few seconds of frames or packets
# Live media leaves within this long of its capture, and never before it, on one clock. Outside,
# either the source's clock is off the server's (an agent's machine not synchronised: its
# reports still pair audio and video alike, so they are sent) or the capture times are wrong
# (seen once in Chromium: captureTime 6.7 s off, both its buffers ~0.5 s): logged, to tell which.
PLAUSIBLE_AGE_S = (-0.1, 2.0)
REFRESH_HZ = 60  # a display's refresh: a browser shows one frame each, so frames go out stamped apart

CaptureTimeOf = Callable[[int], float | None]


def rtp_distance(later: int, earlier: int) -> int:
    """``later - earlier`` for 32-bit RTP timestamps, across a wrap (negative: ``later`` is older)."""
    return (later - earlier + RTP_MODULO // 2) % RTP_MODULO - RTP_MODULO // 2


def ntp_seconds(ntp: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds."""
    return (ntp >> 32) - NTP_TO_UNIX + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_timestamp(seconds: float) -> int:
    """Unix seconds as a 64-bit NTP timestamp."""
    return round((seconds + NTP_TO_UNIX) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


class CaptureClock:
    """A received stream's RTP timestamps -> its sender's capture time, from the sender's reports."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._ntp: float | None = None
        self._rtp = 0

    @property
    def known(self) -> bool:
        return self._ntp is not None

    def on_sender_report(self, ntp: int, rtp: int) -> None:
        if ntp == 0:
            return  # a sender that has sent nothing yet reports zeros
        self._ntp, self._rtp = ntp_seconds(ntp), rtp

    def capture_time(self, rtp: int) -> float | None:
        """Seconds (Unix epoch) at which the media with RTP timestamp ``rtp`` was captured."""
        if self._ntp is None:
            return None
        return self._ntp + rtp_distance(rtp, self._rtp) / self.clock_rate


def follow_sender_reports(receiver: RTCRtpReceiver, clock: CaptureClock) -> Callable[[], None]:
    """Feed ``clock`` with the SRs that arrive for ``receiver``; returns the undo."""

    def on_rtcp(packet) -> None:
        if isinstance(packet, RtcpSrPacket):
            clock.on_sender_report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)

    return internals.watch_received_rtcp(receiver, on_rtcp)


class CaptureTimes:
    """Capture times of the last frames (or packets) a track produced, by their RTP-clock pts."""

    def __init__(self) -> None:
        self._times: OrderedDict[int, float] = OrderedDict()

    def note(self, pts: int, capture_time: float) -> None:
        self._times[pts % RTP_MODULO] = capture_time
        if len(self._times) > KEEP:
            self._times.popitem(last=False)

    def __call__(self, timestamp: int) -> float | None:
        return self._times.get(timestamp % RTP_MODULO)

    def clear(self) -> None:
        self._times.clear()


FrameTime = Callable[[av.VideoFrame], float | None]


class CompositeTimes:
    """When each composite's picture was captured (for the one clock) and when the first packet
    of its primary input's frame reached the server (for the receipt's ``server`` stage).

    An input with a capture clock (the agent's camera: its sender's reports) gives its own
    frames' capture times; one without (the avatar, drawn here) counts as captured when composed.
    """

    def __init__(self, receipt: LatencyReceipt) -> None:
        self.receipt = receipt
        self.capture_clocks: dict[str, FrameTime] = {}  # input -> capture time (Unix seconds)
        self.arrival_clocks: dict[str, FrameTime] = {}  # input -> first packet in (monotonic)
        self.capture_times = CaptureTimes()
        self.arrival_times = CaptureTimes()
        self.forwarded = CaptureTimes()  # pts of frames forwarded as they came (value: unused)
        self._fresh: tuple[float, float] | None = None  # (capture time, composed at)

    def note(self, pts: int, primary: str, fresh: av.VideoFrame | None, now: float) -> None:
        """The composite ``pts`` shows ``primary``'s frame ``fresh`` (None: a repeat of its last)."""
        clock = self.capture_clocks.get(primary)
        if clock is None:
            self._fresh = (time.time(), now)
        elif fresh is not None:
            captured = clock(fresh)
            self._fresh = (captured, now) if captured is not None else None
        if self._fresh is not None:
            # A repeat counts as captured that much later, so the reports stay on one line.
            captured, composed = self._fresh
            self.capture_times.note(pts, captured + (now - composed))
        arrival = self.arrival_clocks.get(primary)
        if fresh is not None and arrival is not None and (arrived := arrival(fresh)) is not None:
            self.arrival_times.note(pts, arrived)

    def follow_receiver(self, name: str, receiver: RTCRtpReceiver) -> tuple[CaptureClock, CaptureTimes]:
        """Know when each of input ``name``'s frames was captured (by its sender's reports) and
        when its first packet arrived (for the receipt's server share), from ``receiver``."""
        clock = CaptureClock(90000)
        follow_sender_reports(receiver, clock)
        arrivals = CaptureTimes()

        def on_packet(packet: RtpPacket) -> None:
            if arrivals(packet.timestamp) is None:
                arrivals.note(packet.timestamp, time.monotonic())

        internals.tap_received_rtp(receiver, on_packet)
        own = weakref.ref(receiver)  # the compositor keeps these functions; the peer goes at its close

        def rtp_timestamp(frame: av.VideoFrame) -> int | None:
            receiver = own()
            first = internals.first_rtp_timestamp(receiver) if receiver is not None else None
            return None if first is None or frame.pts is None else (frame.pts + first) % RTP_MODULO

        def capture_time(frame: av.VideoFrame) -> float | None:
            timestamp = rtp_timestamp(frame)
            return None if timestamp is None else clock.capture_time(timestamp)

        def arrival_time(frame: av.VideoFrame) -> float | None:
            timestamp = rtp_timestamp(frame)
            return None if timestamp is None else arrivals(timestamp)

        self.capture_clocks[name] = capture_time
        self.arrival_clocks[name] = arrival_time
        return clock, arrivals

    def was_forwarded(self, pts: int) -> bool:
        """Whether the frame ``pts`` is the agent's camera as it came (media.passthrough)."""
        return self.forwarded(pts) is not None

    def frame_sent(self, timestamp: int) -> None:
        """A sender sent this composite's last packet: the server's share, first packet in to out."""
        arrived = self.arrival_times(timestamp)
        if arrived is not None:
            self.receipt.record("server", (time.monotonic() - arrived) * 1000)

    def clear(self) -> None:
        for times in (self.capture_clocks, self.arrival_clocks, self.capture_times, self.arrival_times):
            times.clear()
        self.forwarded.clear()
        self._fresh = None


class _SenderTimeline:
    """What one sender sent: its random RTP origin (learnt from its first packet) and its last frame."""

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        capture_time: CaptureTimeOf,
        on_frame_sent: Callable[[int], None] | None,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.capture_time = capture_time
        self.on_frame_sent = on_frame_sent
        self.origin: int | None = None
        self.encoded_timestamp: int | None = None
        self.aligned = 0
        self.withheld = 0
        self.implausible = 0  # reports whose capture time was no live frame's on this clock
        # Sent timestamp -> the track's own (they differ when frames are stamped as they leave).
        self._track_timestamps: OrderedDict[int, int] = OrderedDict()
        self._epoch: float | None = None
        self._last_track: int | None = None  # the last frame's own timestamp (its pts)
        self._stamped: int | None = None  # the last frame that got its capture time

    def stamp_leaving(self, track_timestamp: int, now: float, as_captured: bool = False) -> int:
        """A timestamp for a frame leaving the encoder now: the clock, not when it was composed.

        A browser's jitter buffer grows with the spread between frames' timestamps and their
        arrival; encode time varies (more so on a busy CPU), so stamping after it keeps
        that spread to what the network adds. A frame that was not encoded here (``as_captured``:
        the agent's camera, forwarded) keeps its own timestamp, spaced as its browser captured
        it: stamped as they left, frames that waited together for a busy sender went out a few
        ms apart, which a browser showing one frame a display refresh can only drop. For the same
        reason a composite leaving right behind another is stamped at least one display refresh
        after it (or its own pts step, if shorter: the compositor spaces fresh pictures as their
        camera captured them, media.source_spacing).
        """
        if self._epoch is None:
            self._epoch = now - track_timestamp / self.clock_rate
        last, last_track = self.encoded_timestamp, self._last_track
        self._last_track = track_timestamp
        if as_captured:
            timestamp = round(track_timestamp - self._epoch * self.clock_rate) % RTP_MODULO  # pts: monotonic
        else:
            timestamp = round((now - self._epoch) * self.clock_rate) % RTP_MODULO
            if last is not None and last_track is not None:
                gap = min(rtp_distance(track_timestamp, last_track), self.clock_rate // REFRESH_HZ)
                if gap > 0 and rtp_distance(timestamp, last) < gap:
                    timestamp = (last + gap) % RTP_MODULO
        if last is not None and rtp_distance(timestamp, last) <= 0:
            timestamp = (last + 1) % RTP_MODULO  # never repeat or go back
        self._track_timestamps[timestamp] = track_timestamp
        if len(self._track_timestamps) > KEEP:
            self._track_timestamps.popitem(last=False)
        return timestamp

    def track_timestamp(self, timestamp: int) -> int:
        return self._track_timestamps.get(timestamp, timestamp)

    def on_sent(self, packet: RtpPacket) -> None:
        if self.origin is None and self.encoded_timestamp is not None:
            self.origin = (packet.timestamp - self.encoded_timestamp) % RTP_MODULO
        if self.origin is None:
            return
        timestamp = self.track_timestamp((packet.timestamp - self.origin) % RTP_MODULO)
        if packet.timestamp != self._stamped:
            # On a frame's first packet, where abs-capture-time was negotiated (a receiver reads
            # it per frame: getSynchronizationSources' captureTimestamp).
            self._stamped = packet.timestamp
            captured = self.capture_time(timestamp)
            if captured is not None:
                internals.set_abs_capture_time(packet, ntp_timestamp(captured))
        if packet.marker and self.on_frame_sent is not None:
            self.on_frame_sent(timestamp)

    def align(self, report: RtcpSrPacket) -> bool:
        """Point the report's RTP timestamp at the capture clock; False if it cannot be yet."""
        info = report.sender_info
        if self.origin is None or info.ntp_timestamp == 0:
            return False
        captured = self.capture_time(self.track_timestamp((info.rtp_timestamp - self.origin) % RTP_MODULO))
        if captured is None:
            return False
        # The report pairs the last packet's timestamp with the moment it was sent; shift the
        # timestamp by the time since its media was captured, so the pair reads "captured at".
        since_capture = ntp_seconds(info.ntp_timestamp) - captured
        if not PLAUSIBLE_AGE_S[0] <= since_capture <= PLAUSIBLE_AGE_S[1]:
            self.implausible += 1
            if self.implausible == 1 or self.implausible % 100 == 0:
                logger.warning(
                    "ssrc %s: a report says its media was captured %.3f s before it was sent "
                    "(%d such; a source's clock off the server's, or wrong capture times)",
                    self.ssrc,
                    since_capture,
                    self.implausible,
                )
        info.rtp_timestamp = (info.rtp_timestamp + round(since_capture * self.clock_rate)) % RTP_MODULO
        return True


def align_sender_reports(
    sender: RTCRtpSender,
    clock_rate: int,
    capture_time: CaptureTimeOf,
    on_frame_sent: Callable[[int], None] | None = None,
    stamp_leaving: bool = False,
    as_captured: Callable[[int], bool] | None = None,
) -> _SenderTimeline:
    """Make ``sender``'s SRs map its RTP timestamps to capture time.

    ``capture_time(timestamp)`` gives the capture time of the frame the sender's track
    produced with that timestamp (its pts in the clock rate, before the sender's random
    origin). A report is withheld while the capture time is unknown (no SR from the source
    yet): a browser ignores a stream it has no report for, but a report on another clock
    would pull its estimate off. ``on_frame_sent(timestamp)`` is called as each frame's last
    packet goes out. With ``stamp_leaving`` (video), a frame's RTP timestamp is taken as it
    leaves the encoder instead of from its pts (see :meth:`_SenderTimeline.stamp_leaving`),
    but for frames ``as_captured(pts)`` says were not encoded here.
    """
    timeline = _SenderTimeline(internals.ssrc(sender), clock_rate, capture_time, on_frame_sent)
    internals.send_abs_capture_time(sender)

    def wrap_next(next_encoded_frame):
        async def next_noting_timestamp(codec):
            encoded = await next_encoded_frame(codec)
            if encoded is not None:
                if stamp_leaving:
                    kept = as_captured is not None and as_captured(encoded.timestamp)
                    encoded.timestamp = timeline.stamp_leaving(encoded.timestamp, time.monotonic(), kept)
                timeline.encoded_timestamp = encoded.timestamp
            return encoded

        return next_noting_timestamp

    internals.wrap_next_encoded_frame(sender, wrap_next)
    internals.watch_sent_rtp(sender, timeline.on_sent)
    own = weakref.ref(timeline)

    def wrap_send(send_rtcp):
        async def send_aligned(packets):
            timeline = own()
            kept = []
            for packet in packets:
                if isinstance(packet, RtcpSrPacket) and timeline is not None and packet.ssrc == timeline.ssrc:
                    if not timeline.align(packet):
                        timeline.withheld += 1
                        continue
                    timeline.aligned += 1
                kept.append(packet)
            if kept:
                await send_rtcp(kept)

        return send_aligned

    internals.wrap_sent_rtcp(sender, wrap_send)
    sender._media_timeline = timeline  # type: ignore[attr-defined]  # lives as long as the sender
    return timeline


def frame_sent_directly(sender: RTCRtpSender, timestamp: int) -> None:
    """A frame with the track's ``timestamp`` is about to go out on ``sender`` without its task
    (media.aiortc_internals.DirectSend): what the task's frame chain tells a timeline of
    :func:`align_sender_reports` (no stamping as it leaves: voice)."""
    timeline = getattr(sender, "_media_timeline", None)
    if timeline is not None:
        timeline.encoded_timestamp = timestamp
