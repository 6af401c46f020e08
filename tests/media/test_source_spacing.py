"""SourceSpacedClock: pts spaced as the source captured its frames, anchored to the arrival clock."""

from media.source_spacing import REANCHOR_S, SourceSpacedClock

RATE = 90000
STEP = RATE // 30  # a 30 fps camera's step
REFRESH = RATE // 60


def test_bunched_frames_keep_the_sources_spacing():
    clock = SourceSpacedClock(RATE)
    first = clock.stamp(100.0, 5.0)
    assert first == round(100.0 * RATE)
    # The next two come 50 ms late, 3 ms apart: stamped as captured.
    assert clock.stamp(100.0833, 5.0 + 1 / 30) - first == STEP
    assert clock.stamp(100.0863, 5.0 + 2 / 30) - first == 2 * STEP


def test_a_repeat_is_stamped_on_the_clock_and_the_next_frame_after_it():
    clock = SourceSpacedClock(RATE)
    clock.stamp(100.0, 5.0)
    repeat = clock.stamp(100.1, None)
    assert repeat == round(100.1 * RATE)
    assert clock.stamp(100.1001, 5.0 + 1 / 30) > repeat  # never back


def test_a_lead_past_the_bound_closes_with_frames_a_refresh_apart():
    clock = SourceSpacedClock(RATE)
    last = clock.stamp(100.0, 5.0)
    # A burst after a stall: 20 frames captured 33 ms apart arrive 1 ms apart.
    steps = []
    for i in range(1, 21):
        pts = clock.stamp(100.0 + i * 0.001, 5.0 + i / 30)
        steps.append(pts - last)
        last = pts
    assert all(step >= REFRESH for step in steps), steps
    assert steps[0] == STEP and steps[-1] < STEP  # spaced as captured, then closing the lead
    # Then on time again: the lead closes, frames still a refresh apart, and stays within bounds.
    for i in range(21, 61):
        arrived = 100.02 + (i - 20) / 30
        pts = clock.stamp(arrived, 5.0 + i / 30)
        assert pts - last >= REFRESH
        last = pts
    assert abs(last - round(arrived * RATE)) <= REANCHOR_S * RATE


def test_another_source_is_anchored_again_to_the_clock():
    clock = SourceSpacedClock(RATE)
    first = clock.stamp(100.0, 5.0)
    assert clock.stamp(100.033, 9_000.0) == round(100.033 * RATE)  # a jump in source time
    clock.reset()
    after = clock.stamp(100.040, 5.0 + 2 / 30)  # the old source's time again: anchored anew
    assert after == round(100.040 * RATE) and after > first
