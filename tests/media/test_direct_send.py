"""media.aiortc_internals.DirectSend: a frame sent from the caller's step (a speaker's receive
callback). Sending on a real loopback pair is tested through the voices (tests/media/test_voice.py,
test_whisper.py); here, what a failure does to the caller."""

from __future__ import annotations

from types import SimpleNamespace

from aiortc import RTCPeerConnection

from media import aiortc_internals as internals
from media.browser import ToneTrack


class _Failing:
    stamper = SimpleNamespace(ssrc=1)

    def send(self, frame):
        raise RuntimeError("a sender that broke")


async def test_a_send_that_fails_is_counted_and_not_raised_into_the_speakers_receive_path(caplog):
    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver(ToneTrack(440), direction="sendonly").sender
        direct = internals.DirectSend(sender)
        direct._stream = _Failing()  # as if started: the stream its sender runs
        assert direct.send([b"x"], 960) is False and direct.send([b"y"], 1920) is False
        assert direct.failed == 2
        assert caplog.text.count("direct RTP of sender") == 1  # logged once
    finally:
        await pc.close()
