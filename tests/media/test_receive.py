"""media.receive on real loopback peers: lost packets repaired by retransmission, and a lost
keyframe recovered by a keyframe request, with no frame that lacks its reference decoded.

Two video sections share one transport (BUNDLE, as a browser agent's camera and screen do):
aiortc dropped every retransmission there, so no lost packet was ever repaired."""

from __future__ import annotations

from aiortc.codecs import depayload
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.encoded import is_keyframe
from media.receive import MarkerJitterBuffer
from media.testing import LoopbackCall, TestCardTrack
from tests.media.test_room import wait_for


def camera_ends(call: LoopbackCall):
    """The first video section's sender and receiver (the second shares their transport)."""
    sender = next(t.sender for t in call.sender.getTransceivers() if t.kind == "video")
    receiver = next(t.receiver for t in call.receiver.getTransceivers() if t.kind == "video")
    buffer = internals.jitter_buffer(receiver)
    assert isinstance(buffer, MarkerJitterBuffer)
    return sender, receiver, buffer


async def lose_packets_and_see_them_repaired(call: LoopbackCall) -> None:
    """Lose ten of the camera's packets (every 15th, never a retransmission): each one is NACKed
    and retransmitted, frames go on, and none is given up."""
    _, receiver, buffer = camera_ends(call)
    dropped: set[int] = set()
    count = iter(range(1_000_000))

    def drop(packet: RtpPacket) -> bool:
        if internals.media_ssrc(receiver, packet) is None:
            return False  # a retransmission: let it through
        if next(count) % 15 == 0 and packet.sequence_number not in dropped and len(dropped) < 10:
            dropped.add(packet.sequence_number)
            return True
        return False

    internals.drop_received_rtp(receiver, drop)
    nacks = internals.nack_generator(receiver)
    assert nacks is not None
    await wait_for(lambda: len(dropped) == 10 and not nacks.missing)
    frames = call.slots[0].received
    await call.wait_frames(frames + 10)
    assert nacks.repairs == 10  # every lost packet came back
    assert buffer.gaps_skipped == 0  # so no frame was given up


async def test_lost_packets_are_retransmitted_to_a_receiver_bundled_with_another_video() -> None:
    async with LoopbackCall([TestCardTrack(), TestCardTrack()], codec="VP8") as call:
        await call.wait_frames(5)
        assert len({t.receiver.transport for t in call.receiver.getTransceivers()}) == 1  # bundled
        await lose_packets_and_see_them_repaired(call)


async def test_a_lost_keyframe_is_recovered_by_a_keyframe_request_and_no_delta_is_decoded_before_it() -> None:
    async with LoopbackCall([TestCardTrack(), TestCardTrack()], codec="VP8") as call:
        await call.wait_frames(5)
        sender, receiver, buffer = camera_ends(call)
        codec = next(c for c in internals.codecs(call.receiver.getTransceivers()[0]) if c.name == "VP8")
        doomed: set[int] = set()  # the RTP timestamp of the keyframe lost for good
        handed_on: list[tuple[int, bool]] = []  # frames given to the decoder: (timestamp, keyframe)

        def drop(packet: RtpPacket) -> bool:
            if packet.timestamp in doomed:
                return True  # every packet of it, retransmissions included
            if not doomed and internals.media_ssrc(receiver, packet) is not None and packet.payload:
                data = depayload(codec, packet.payload)
                if is_keyframe("VP8", data) and len(data) > 3 and data[3:6] == b"\x9d\x01\x2a":
                    doomed.add(packet.timestamp)  # the keyframe's first packet
                    return True
            return False

        buffer.on_frame = lambda frame: handed_on.append((frame.timestamp, is_keyframe("VP8", frame.data)))
        internals.drop_received_rtp(receiver, drop)
        internals.force_keyframe(sender)  # the keyframe that gets lost
        await wait_for(lambda: bool(doomed))
        asked = buffer.keyframes.asked
        # A keyframe after the lost one reached the decoder (it may be the first frame handed on at
        # all: when the lost keyframe was the very next frame, everything after it was held).
        await wait_for(lambda: any(key and ts > min(doomed) for ts, key in handed_on))
        frames = call.slots[0].received
        await call.wait_frames(frames + 10)  # decoding goes on
        assert buffer.gaps_skipped >= 1  # given up ...
        assert buffer.keyframes.asked > asked  # ... a keyframe asked for ...
        assert buffer.keyframes.held >= 1  # ... the deltas that referred to it held back
        lost_at = next(i for i, (ts, _) in enumerate(handed_on) if ts > min(doomed))
        assert handed_on[lost_at][1], "a delta frame reached the decoder before the new keyframe"
