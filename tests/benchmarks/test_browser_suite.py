"""The browser suite's pure parts: the probes' records -> figures, the summary's schema and targets
(the stamp code: test_browser_stamp.py). The suite itself (real Chromium, ~70 s even --quick)
runs only with --run-slow."""

from __future__ import annotations

import json

import pytest

from benchmarks import browser_metrics as m
from benchmarks import browser_summary as summary

# What the issue asks the last JSON line to carry, at least.
REQUIRED = {
    "server_p50_ms",
    "server_p95_ms",
    "direct_p50_ms",
    "direct_p95_ms",
    "ratio_p50",
    "voice_ms",
    "direct_voice_ms",
    "av_offset_ms",
    "direct_av_offset_ms",
    "bwe_end_kbps",
    "direct_bwe_end_kbps",
    "bwe_2mbps_s",
    "direct_bwe_2mbps_s",
    "agent_720p_s",
    "direct_720p_s",
    "jitter_buffer_ms",
    "direct_jitter_buffer_ms",
    "repeated_frames",
    "loaded_p95_ms",
    "loaded_jitter_buffer_ms",
    "frames",
    "beeps",
    "n",
    "targets",
}
TARGETS = {"voice", "av_sync", "latency_ratio", "bwe", "agent_720p", "loaded"}


def cells_of(frame_id: int, black: int = 20, white: int = 230) -> list[int]:
    return [white if bit else black for bit in m.stamp_bits(frame_id)]


# ------------------------------------------------------------------------------ records -> figures


def presented(frame_id, display, *, luma=60.0, same=True, cells=None):
    return m.Presented(
        m.decode_cells(cells if cells is not None else cells_of(frame_id)),
        luma,
        display,
        1280,
        720,
        None,
        same,
        None,
    )


def test_video_window_counts_latency_freezes_and_unreadable_frames():
    captured = {i: 1000.0 + i * 33.3 for i in range(20)}
    frames = [presented(i, captured[i] + 50) for i in range(10)]
    frames.insert(6, presented(5, captured[5] + 90))  # frame 5 shown again: a freeze
    frames.insert(3, presented(0, captured[2] + 51, cells=[128] * 24))  # unreadable
    frames.insert(2, presented(9, captured[1] + 52, same=False))  # a newer frame was read: skipped
    window = m.video_window(captured, frames, t0=captured[1] + 50, t1=captured[7] + 50)
    assert window.latencies == pytest.approx([50.0] * 6)  # ids 1..6: 0 before t0, 7 at t1
    assert (window.repeated, window.unreadable, window.raced) == (1, 1, 1)
    assert window.presented == 8  # the raced one is not counted as presented


def test_flashes_are_the_bright_frames_their_stamps_name():
    frames = [
        presented(29, 100.0),
        presented(31, 140.0, luma=250),  # 30 was not presented: flash 1 arrives with 31
        presented(32, 170.0, luma=250),
        presented(33, 200.0, luma=250),  # bright, but not a flash frame: a misread
        presented(60, 1100.0, luma=240),
    ]
    arrivals, misreads = m.flash_arrivals(frames)
    assert arrivals == {1: 140.0, 2: 1100.0}
    assert misreads == 1


def test_each_onset_goes_to_the_latest_beep_before_it():
    sent = [1000.0, 2000.0, 3000.0, 4000.0]
    heard = [950.0, 1150.0, 1170.0, 2140.0, 3950.0]  # 950: before any beep; 1170: a second onset
    assert m.match_beeps(sent, heard) == {0: 1150.0, 1: 2140.0}  # 3950 is 950 ms late: unmatched
    assert m.beep_seconds([1003.0, 2090.0, 3500.0], {1: 1000.0, 2: 2000.0, 3: 3000.0}) == {0: 1, 1: 2}


def stats_row(t, **fields):
    return {"t": t, "bwe": None, "out": None, "vin": None, "ain": None, **fields}


def test_getstats_series():
    rows = [
        stats_row(0.0, vin={"jbd": 0.0, "jbe": 0}),
        stats_row(
            1000.0, bwe=900_000, vin={"jbd": 0.6, "jbe": 30}, out={"w": 640, "h": 360, "qlr": "bandwidth"}
        ),
        stats_row(
            2000.0, bwe=2_100_000, vin={"jbd": 1.5, "jbe": 60}, out={"w": 1280, "h": 720, "qlr": "none"}
        ),
        stats_row(3000.0, bwe=None, vin={"jbd": 2.1, "jbe": 90}, out={"w": 1280, "h": 720, "qlr": "none"}),
    ]
    assert m.jitter_buffer_ms(rows, 1000.0, 3000.0) == pytest.approx(25.0)  # 1.5 s over 60 frames
    assert m.jitter_buffer_ms(rows, 500.0, 2500.0) == pytest.approx(25.0)  # from the row at/before t0
    assert m.jitter_buffer_ms(rows, 0.0, 0.0) is None  # nothing emitted
    assert m.first_reach(rows, -500.0, lambda s: (m.bwe_kbps(s) or 0) >= 2000, 3000.0) == 2.5
    assert m.first_reach(rows, -500.0, m.is_720p, 1500.0) is None  # not before `until`
    assert m.first_reach(rows, None, m.is_720p, 3000.0) is None  # never connected
    assert m.value_at(rows, 3500.0, m.bwe_kbps) == 2100.0  # the last known value
    assert m.rate(rows, 0.0, 3000.0, lambda s: s["vin"]["jbe"]) == 30.0  # 90 frames in 3 s
    assert m.rate(rows, 0.0, 500.0, lambda s: s["vin"]["jbe"]) is None
    assert m.share(rows, 1000.0, 3000.0, m.is_720p) == {"False": 0.333, "True": 0.667}
    assert m.one_stream(["a=msid:abc t1\r", "a=msid:abc t2\r"])
    assert not m.one_stream(["a=msid:abc t1", "a=msid:def t2"])
    assert not m.one_stream(["a=msid:- t1", "a=msid:- t2"])


def test_percentiles_and_medians():
    assert m.percentile([], 50) is None
    assert m.percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0
    assert m.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert m.median([3.0, None, 1.0]) == 2.0
    assert summary.median_or_never([1.0, None, 3.0]) == 3.0
    assert summary.median_or_never([None, None, 1.0]) is None
    assert summary.median_or_never([]) is None


def fake_call(*, video_ms=50.0, voice_ms=120.0, seconds=8, t0=1_000_000.0) -> dict:
    """What the two pages would record for a steady call: frames ``video_ms`` late, beeps ``voice_ms``."""
    frames = [[i, t0 + i * 1000 / 30] for i in range(seconds * 30)]
    flashes = [[i, t] for i, t in frames if i % 30 == 0]
    beeps = [[t + 2.0, t + 40.0] for _, t in flashes]
    shown = [
        [
            cells_of(i),
            250 if m.is_flash_id(i) else 60,
            t + video_ms,
            1280,
            720,
            t + video_ms - 30,
            True,
            t + 5,
        ]
        for i, t in frames
    ]
    shown.insert(100, shown[99])  # one freeze, inside the quiet window
    onsets = [[r + voice_ms - 40, r + voice_ms] for r, _ in beeps]
    sent_stats, received_stats = [], []
    for k in range(seconds * 4):
        t = t0 + k * 250
        size = (1280, 720) if k >= 12 else (320, 180)
        out = {"w": size[0], "h": size[1], "fps": 30, "qlr": "none", "codec": "video/VP8"}
        sent_stats.append(stats_row(t, bwe=300_000 + k * 200_000, out=out))
        vin = {
            "jbd": k * 7.5 * 0.02,
            "jbe": k * 7.5,
            "codec": "video/VP8",
            "w": 1280,
            "h": 720,
            "jitter": 0.004,
        }
        ain = {"jbd": k * 12000 * 0.06, "jbe": k * 12000, "jitter": 0.003}
        received_stats.append(stats_row(t, vin=vin, ain=ain))
    msid = ["a=msid:s a\r", "a=msid:s v\r"]
    pcs = [{"created": t0 - 900, "connected": t0 - 500, "state": "connected"}]
    return {
        "sent": {"frames": frames, "flashes": flashes, "beeps": beeps, "stats": sent_stats, "errors": [],
                 "pcs": pcs, "msid": []},
        "received": {"presented": shown, "onsets": onsets, "stats": received_stats, "errors": [],
                     "msid": msid},
        "marks": {"quiet_t0": t0 + 1000, "quiet_t1": t0 + 4000, "loaded_t0": t0 + 4500,
                  "loaded_t1": t0 + 7500},
        "server_cpu_pct": {"quiet": 40.0, "loaded": 35.0},
        "load_avg": [1.0, 1.2],
    }  # fmt: skip


def test_a_call_becomes_its_figures():
    figures = summary.analyse(fake_call())
    assert figures["p50_ms"] == figures["p95_ms"] == 50.0
    assert figures["frames"] == 90 and figures["repeated_frames"] == 1
    assert figures["samples_expected"] == 90  # 91 shown, one a repeat: every new picture read
    assert figures["voice_ms"] == 120.0 and figures["beeps"] == 3
    assert figures["av_offset_ms"] == 70.0 and figures["capture_skew_ms"] == 2.0
    assert figures["receive_p50_ms"] == 20.0
    assert figures["capture_time_p50_ms"] == 45.0  # captureTime 5 ms after the stamp's
    assert figures["jitter_buffer_ms"] == 20.0 and figures["audio_jitter_buffer_ms"] == 60.0
    assert figures["bwe_2mbps_s"] == 2.75  # 300 kbps + 200 kbps every 250 ms, connected 500 ms before t0
    assert figures["agent_720p_s"] == 3.5
    assert figures["bwe_end_kbps"] == 3500.0  # at the quiet window's end
    assert figures["one_stream"] and figures["codec"] == "video/VP8"
    assert figures["loaded_p95_ms"] == 50.0 and figures["flash_misreads"] == 0
    json.dumps(figures)


def test_the_summary_has_every_figure_the_issue_asks_for():
    runs = [
        {
            "server": summary.analyse(fake_call(video_ms=60 + k, voice_ms=130)),
            "direct": summary.analyse(fake_call()),
        }
        for k in range(3)
    ]
    result = summary.summarise(runs, window_s=3)
    assert REQUIRED <= set(result)
    assert set(result["targets"]) == TARGETS and all(isinstance(v, bool) for v in result["targets"].values())
    assert result["n"] == 3 and len(result["runs"]) == 3
    assert result["server_p50_ms"] == 61.0  # the median run, not the best
    assert result["ratio_p50"] == pytest.approx(61 / 50, abs=1e-3)
    assert result["frames"] == 3 * 90 and result["beeps"] == 9
    assert result["samples_expected"] == result["samples_measured"] == 6 * 90  # server and direct calls
    assert result["voice_ms"] == 130.0 and result["av_offset_ms"] == 69.0  # 130 - 61
    assert result["targets"] == {
        "voice": True,  # 130 <= 120 + 20
        "av_sync": True,  # 69 ms, 1 ms from the direct call's 70
        "latency_ratio": False,  # 61 / 50
        "bwe": True,  # the same ramp on both paths
        "agent_720p": True,
        "loaded": True,
    }
    json.loads(json.dumps(result))


def test_targets():
    good = {
        "voice_ms": 110, "direct_voice_ms": 100, "av_offset_ms": 30, "direct_av_offset_ms": 0,
        "ratio_p50": 1.1, "bwe_end_kbps": 2500, "direct_bwe_end_kbps": 3000, "bwe_2mbps_s": 4.0,
        "direct_bwe_2mbps_s": 3.0, "agent_720p_s": 2.5, "direct_720p_s": 2.0, "loaded_p95_ms": 140,
        "server_p95_ms": 100,
    }  # fmt: skip
    assert all(summary.targets(good).values())
    cases = {
        "voice": {"voice_ms": 121},
        "av_sync": {"av_offset_ms": 41},  # 41 ms from the direct call's 0
        "latency_ratio": {"ratio_p50": 1.16},
        "bwe": {"bwe_2mbps_s": None},
    }
    for target, change in cases.items():
        assert not summary.targets(good | change)[target], target
    assert not summary.targets(good | {"av_offset_ms": -50, "direct_av_offset_ms": -40})["av_sync"]
    assert not summary.targets(good | {"bwe_end_kbps": 2300})["bwe"]  # < 0.8 x 3000
    assert summary.targets(good | {"direct_bwe_2mbps_s": None, "bwe_2mbps_s": 3.0})["bwe"]  # then 3 s
    assert summary.targets(good | {"direct_720p_s": None, "agent_720p_s": None})["agent_720p"]  # vacuous
    assert not summary.targets(good | {"agent_720p_s": None})["agent_720p"]
    assert summary.targets(good | {"agent_720p_s": 2.0, "direct_720p_s": 0.5})["agent_720p"]  # max(2 s, ...)
    assert not summary.targets(good | {"loaded_p95_ms": 151})["loaded"]
    assert not summary.targets({})["voice"]


# ------------------------------------------------------------------------------ the suite itself


@pytest.mark.slow
@pytest.mark.browser
def test_the_quick_suite_runs_both_calls():
    from benchmarks.chrome import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from benchmarks import browser

    result = browser.run(quick=True)
    assert REQUIRED <= set(result)
    assert set(result["chromium"]) == {"args", "headed"}
    assert result["n"] == 1 and result["frames"] > 100 and result["direct_frames"] > 100
    assert result["beeps"] >= 5 and result["direct_beeps"] >= 5
    for run in result["runs"]:
        for path in ("server", "direct"):
            assert run[path].get("flash_misreads", 0) <= 2, run[path]
    json.dumps(result)


@pytest.mark.browser
async def test_each_sides_chromium_is_found_by_its_label_and_its_cpu_counted():
    from benchmarks.chrome import CHROMIUM, browser_cpu_pct, browser_ticks, chromium, new_page

    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    from benchmarks.browser import LABELS

    async with chromium(label=LABELS["agent"]) as agents:
        page = await new_page(agents)
        before = browser_ticks(LABELS)
        assert before["agent"] is not None and len(before["agent"]) >= 2  # the browser and its helpers
        assert before["customer"] is None  # not launched: unknown, not 0 %
        await page.evaluate("() => { const end = performance.now() + 400; while (performance.now() < end); }")
        cpu = browser_cpu_pct(LABELS, before, 0.5)
    assert cpu["agent"] is not None and cpu["agent"] > 20  # the busy page, counted in its renderer
    assert cpu["customer"] is None


def test_spacing_error_compares_each_frame_with_the_one_captured_before_it() -> None:
    captured = {1: 1000.0, 2: 1033.0, 3: 1066.0, 5: 1132.0}

    def shown(frame_id: int, display: float, rtp: int, media: float) -> m.Presented:
        return m.Presented(frame_id, 0.0, display, 640, 360, media_s=media, rtp_timestamp=rtp)

    frames = [
        shown(1, 1100, 2**32 - 1485, 0.0),  # wraps: the next is 33 ms later on the RTP clock
        shown(1, 1117, 2**32 - 1485, 0.0),  # a repeat is not a new frame
        shown(2, 1133, 1485, 0.033),
        shown(3, 1166, 1485 + 3870, 0.076),  # 43 ms after frame 2 on both clocks: 10 ms off
        shown(5, 1232, 9000, 0.140),  # frame 4 was never shown: no pair
    ]
    assert m.spacing_error_ms(captured, frames, 1000, 2000, "rtp") == pytest.approx([0.0, 10.0])
    assert m.spacing_error_ms(captured, frames, 1000, 2000, "media") == pytest.approx([0.0, 10.0])
    assert m.spacing_error_ms(captured, frames, 1150, 2000, "rtp") == []  # frame 2 is outside


def test_a_result_says_which_chromium_switches_it_was_taken_with(monkeypatch) -> None:
    from benchmarks import chrome

    monkeypatch.delenv(chrome.EXTRA_ARGS_ENV, raising=False)
    monkeypatch.delenv(chrome.HEADED_ENV, raising=False)
    assert chrome.launch_settings() == {"args": "", "headed": False}
    monkeypatch.setenv(chrome.EXTRA_ARGS_ENV, "--disable-rtc-smoothness-algorithm")
    monkeypatch.setenv(chrome.HEADED_ENV, "1")
    assert chrome.launch_settings() == {"args": "--disable-rtc-smoothness-algorithm", "headed": True}


def test_a_direct_calls_descriptions_carry_the_servers_start_bitrate() -> None:
    from benchmarks.chrome import with_start_bitrate

    sdp = "\r\n".join([
        "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 116", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack",
        "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", "a=rtpmap:103 H264/90000",
        "a=fmtp:103 packetization-mode=1", "a=rtpmap:104 rtx/90000", "a=fmtp:104 apt=103",
        "a=rtpmap:116 red/90000", "",
    ])
    lines = with_start_bitrate(sdp, 1000).split("\r\n")
    assert "a=fmtp:96 x-google-start-bitrate=1000" in lines  # VP8 had no fmtp line
    assert "a=fmtp:103 packetization-mode=1;x-google-start-bitrate=1000" in lines
    assert "a=fmtp:97 apt=96" in lines and "a=fmtp:111 minptime=10" in lines  # RTX and audio untouched
    assert sum("x-google" in line for line in lines) == 2  # not on RED either
