"""One clock: the server's sender reports map its RTP timestamps to when the media was captured."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtcpSrPacket

from media import aiortc_internals as internals
from media.capture_clock import CaptureClock, CaptureTimes, align_sender_reports, ntp_seconds
from media.sources import TestCardTrack

NTP_TO_UNIX = 2_208_988_800


def ntp(seconds: float) -> int:
    whole = int(seconds)
    return ((whole + NTP_TO_UNIX) << 32) | int((seconds - whole) * (1 << 32))


def test_a_report_maps_timestamps_either_side_of_it_and_across_a_wrap():
    clock = CaptureClock(90000)
    assert clock.capture_time(1234) is None
    clock.on_sender_report(ntp(1000.0), 2**32 - 9000)
    assert abs(clock.capture_time(2**32 - 18000) - 999.9) < 1e-6
    assert abs(clock.capture_time(81000) - 1001.0) < 1e-6  # wrapped past zero
    clock.on_sender_report(0, 0)  # a sender that sent nothing yet: ignored
    assert clock.known and abs(ntp_seconds(ntp(1000.0)) - 1000.0) < 1e-6


class CapturedEarlier(MediaStreamTrack):
    """A camera whose every frame was captured 200 ms before the track hands it over."""

    kind = "video"

    def __init__(self, times: CaptureTimes) -> None:
        super().__init__()
        self.card = TestCardTrack(160, 90, fps=30, label="")
        self.times = times

    async def recv(self):
        frame = await self.card.recv()
        frame.time_base = fractions.Fraction(1, 90000)
        self.times.note(frame.pts, time.time() - 0.2)
        return frame


async def test_the_senders_reports_say_when_each_frame_was_captured_not_when_it_was_sent():
    times = CaptureTimes()
    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    reports: list[RtcpSrPacket] = []
    first_timestamp: list[int] = []
    try:
        transceiver = sender_pc.addTransceiver(CapturedEarlier(times), direction="sendonly")
        timeline = align_sender_reports(transceiver.sender, 90000, times)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        receiver = receiver_pc.getTransceivers()[0].receiver
        internals.watch_received_rtcp(receiver, lambda p: isinstance(p, RtcpSrPacket) and reports.append(p))
        internals.tap_received_rtp(receiver, lambda p: first_timestamp or first_timestamp.append(p.timestamp))
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(
            RTCSessionDescription(sdp=receiver_pc.localDescription.sdp, type="answer")
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(reports) < 2:
            assert loop.time() < deadline, "no sender report came"
            await asyncio.sleep(0.05)
        assert timeline.aligned >= 2
        for report in reports:
            # The first frame (pts 0) went out first: the stream's RTP origin is its timestamp.
            mapping = CaptureClock(90000)
            mapping.on_sender_report(report.sender_info.ntp_timestamp, report.sender_info.rtp_timestamp)
            pts = (report.sender_info.rtp_timestamp - first_timestamp[0]) % 2**32
            candidates = [p for p in range(pts - 45000, pts + 1) if times(p) is not None]
            frame = candidates[-1]  # the last frame sent before the report, give or take one
            said = mapping.capture_time((first_timestamp[0] + frame) % 2**32)
            # Unaligned, the report would put capture at the send time, 200 ms off; the card's
            # timestamps step evenly while its frames come with jitter (more on a busy machine): slack.
            assert abs(said - times(frame)) < 0.1, "the report does not map to capture time"
    finally:
        await sender_pc.close()
        await receiver_pc.close()


@contextlib.asynccontextmanager
async def aligned_sender(capture_time):
    """A test card sent to a loopback peer, its reports aligned on ``capture_time``; yields the
    timeline, the reports the peer received, and a wait for a condition (10 s at most)."""
    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    reports: list[RtcpSrPacket] = []
    try:
        transceiver = sender_pc.addTransceiver(TestCardTrack(160, 90, fps=30, label=""), direction="sendonly")
        timeline = align_sender_reports(transceiver.sender, 90000, capture_time)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        receiver = receiver_pc.getTransceivers()[0].receiver
        internals.watch_received_rtcp(receiver, lambda p: isinstance(p, RtcpSrPacket) and reports.append(p))
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(
            RTCSessionDescription(sdp=receiver_pc.localDescription.sdp, type="answer")
        )

        async def until(condition) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not condition():
                assert loop.time() < deadline, "the sender sent no report"
                await asyncio.sleep(0.05)

        yield timeline, reports, until
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_a_report_is_withheld_while_the_capture_time_is_unknown():
    async with aligned_sender(lambda timestamp: None) as (timeline, reports, until):
        await until(lambda: timeline.withheld >= 2)
        assert reports == [] and timeline.aligned == 0


def test_frames_stamped_as_they_leave_keep_their_capture_times_and_never_go_back():
    from media.capture_clock import _SenderTimeline

    times = CaptureTimes()
    timeline = _SenderTimeline(ssrc=1, clock_rate=90000, capture_time=times, on_frame_sent=None)
    sent = []
    for n, (pts, leaves) in enumerate([(0, 10.000), (3000, 10.045), (6000, 10.050), (9000, 10.050)]):
        times.note(pts, 100.0 + n)
        timestamp = timeline.stamp_leaving(pts, leaves)
        timeline.encoded_timestamp = timestamp
        sent.append(timestamp)
    assert sent[1] - sent[0] == 4050  # 45 ms after the first, whatever the pts said
    assert sent[3] > sent[2]  # two frames leaving at once still get increasing timestamps
    assert [times(timeline.track_timestamp(t)) for t in sent] == [100.0, 101.0, 102.0, 103.0]


def test_composites_leaving_together_are_stamped_a_display_refresh_apart():
    from media.capture_clock import _SenderTimeline

    timeline = _SenderTimeline(ssrc=1, clock_rate=90000, capture_time=CaptureTimes(), on_frame_sent=None)
    sent = []
    # Pictures captured 33 ms apart (their pts) leaving 3 ms apart (bunched on the way in or by
    # a busy encoder), then one on time; and a source faster than a refresh keeps its own step.
    for pts, leaves in [(0, 10.000), (3000, 10.060), (6000, 10.063), (9000, 10.100), (9600, 10.101)]:
        timestamp = timeline.stamp_leaving(pts, leaves)
        timeline.encoded_timestamp = timestamp
        sent.append(timestamp)
    steps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    # 60 ms as it left; then a refresh (1,500 at 90 kHz) rather than 3 ms; the clock again once it
    # is past; the faster source's own 600 rather than 1 ms.
    assert steps == [5400, 1500, 9000 - 6900, 600]


async def test_a_report_whose_capture_time_is_no_live_frames_is_sent_and_logged(caplog):
    # An agent's clock seconds off the server's still pairs its audio and video alike: the reports
    # go out (lip sync needs them), and the log says so (seen once: captureTime 6.7 s off).
    async with aligned_sender(lambda timestamp: time.time() - 6.7) as (timeline, reports, until):
        await until(lambda: bool(reports))
        assert timeline.implausible >= 1 and timeline.aligned >= 1
        assert "media was captured 6." in caplog.text  # ~6.7 s, less the time since that frame left
