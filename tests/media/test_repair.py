"""media.repair, synchronously: NACKs asked again while a packet stays missing, keyframe waits."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from media.repair import NACK_GIVE_UP_S, NACK_RETRY_MIN_S, KeyframeWait, RetryingNacks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def packet(seq: int) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000)


def feed(nacks: RetryingNacks, clock: Clock, seqs: range | list[int], step: float = 0.005) -> list[list[int]]:
    """Packets in, 5 ms apart; the NACKs the receiver would send (each naming every missing)."""
    sent = []
    for seq in seqs:
        clock.now += step
        if nacks.add(packet(seq)):
            sent.append(sorted(nacks.missing))
    return sent


def test_a_packet_still_missing_is_asked_for_again_each_retry_interval_until_it_comes() -> None:
    clock = Clock()
    nacks = RetryingNacks(clock)
    assert feed(nacks, clock, [1, 2, 4]) == [[3]]  # the gap appears: asked at once
    # aiortc asked only when a new gap appeared; here it is asked again while it stays missing.
    again = feed(nacks, clock, range(5, 5 + 70))  # 350 ms of packets
    assert again and all(sent == [3] for sent in again)
    assert nacks.retries == len(again)
    assert 2 <= len(again) <= 350 / (NACK_RETRY_MIN_S * 1000)
    feed(nacks, clock, [3])  # the retransmission
    assert nacks.missing == set() and nacks.repairs == 1
    assert feed(nacks, clock, range(75, 100)) == []  # nothing missing: no more NACKs


def test_the_retry_interval_follows_the_measured_round_trip() -> None:
    clock = Clock()
    nacks = RetryingNacks(clock)
    seq = 1
    for _ in range(8):  # gaps repaired 20 ms after their first NACK
        feed(nacks, clock, [seq, seq + 2])
        clock.now += 0.02
        feed(nacks, clock, [seq + 1], step=0.0)
        seq += 3
    assert nacks.repairs == 8
    assert nacks.retry_s == max(NACK_RETRY_MIN_S, 1.5 * 0.025)  # 20 ms + the 5 ms step
    slow = RetryingNacks(Clock())
    assert slow.retry_s > nacks.retry_s  # none measured yet: a mobile link's round trip assumed


def test_a_packet_the_jitter_buffer_gave_up_is_no_longer_asked_for() -> None:
    clock = Clock()
    nacks = RetryingNacks(clock)
    assert feed(nacks, clock, [1, 3]) == [[2]]  # asked for at first
    steps = round(NACK_GIVE_UP_S / 0.005) + 2
    feed(nacks, clock, range(4, 4 + steps))
    assert 2 not in nacks.missing
    assert feed(nacks, clock, range(4 + steps, 4 + steps + 100)) == []


def test_after_a_lost_frame_only_a_keyframe_passes_and_the_keyframe_is_asked_for_again() -> None:
    wait = KeyframeWait(retry_s=0.3)
    assert wait.passes(False) and not wait.ask(False, 0.0)  # nothing lost: deltas go on, no PLI
    wait.lost()
    assert wait.ask(True, 1.0)  # the loss asks for a keyframe at once
    assert not wait.passes(False) and not wait.passes(False)
    assert wait.held == 2
    assert not wait.ask(False, 1.1) and not wait.ask(True, 1.2)  # within 0.3 s: not again
    assert wait.refused == 1
    assert wait.ask(False, 1.31)  # still waiting a retry interval on: asked again
    # No keyframe yet: the next ask waits twice as long (a keyframe through a slow link takes
    # longer than 0.3 s; a request every 0.3 s kept a new keyframe behind each one).
    assert not wait.ask(False, 1.6) and wait.ask(False, 1.92)
    assert not wait.ask(False, 3.0) and wait.ask(False, 3.13)
    assert wait.passes(True)  # the keyframe
    assert wait.passes(False)  # and the deltas after it
    assert not wait.ask(False, 1.4)  # nothing awaited: no PLI
    assert wait.ask(True, 1.41)  # a new loss after the keyframe asks at once
    assert wait.asked == 5
