"""The latency suite, tiny: its JSON, and that every path was built alike (the same final receiver,
codec, encoder and bitrate range on every path). No timing is asserted: the figures depend on the
machine; what is checked is that they were measured, and measured like for like."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from benchmarks import __main__ as runner
from benchmarks import latency, latency_paths
from media.camera import CameraUnavailable
from media.stamp import Stamp, write_stamp

REQUIRED = {
    "direct_p50_ms",
    "direct_h264_p50_ms",
    "relay_p50_ms",
    "server_p50_ms",
    "server_p95_ms",
    "server_h264_p50_ms",
    "server_h264_p95_ms",
    "hop_p50_ms",
    "floor_ms",
    "hop_vs_floor",
    "growth_ms",
    "growth_p95_ms",
    "encode_p95_ms",
    "compose_p95_ms",
    "slot_dropped",
    "frames",
    "ratio",
    "vs_direct",
    "samples_expected",
    "samples_measured",
    "close_spaced_pct",
}
VP8_PATHS = ("direct", "relay", "server", "server_screen")
H264_PATHS = ("direct_h264", "server_h264", "growth")


def test_a_tiny_run_measures_every_path_built_alike():
    summary = latency.run(True, scale=0.1)
    samples = summary.pop("samples")
    json.dumps(summary)
    assert REQUIRED <= summary.keys()
    paths = summary["paths"]
    assert set(paths) == {*VP8_PATHS, *H264_PATHS}
    bitrate = [latency_paths.BITRATE.start, latency_paths.BITRATE.min, latency_paths.BITRATE.max]
    for name, config in paths.items():
        # The same final receiver: frames completed on the marker bit, on every path.
        assert config["receiver"] == "MarkerJitterBuffer", (name, config)
        assert config["bitrate"] == bitrate, (name, config)
        codec = "H264" if name in H264_PATHS else "VP8"
        assert config["codec"] == codec, (name, config)
        assert config["encoder"] == ("FastH264Encoder" if codec == "H264" else "SafeVp8Encoder"), (
            name,
            config,
        )
        if name.startswith(("server", "growth")):
            assert config["agent_encoder"] == {"encoder": config["encoder"], "bitrate": bitrate}, (
                name,
                config,
            )
    assert paths["relay"]["middle_receiver"] == "MarkerJitterBuffer"
    # The floor encodes at the bitrates the server path's encoders had reached.
    for codec, path in (("vp8", "server"), ("h264", "server_h264")):
        for side, bps in paths[path]["target_bps"].items():
            assert bps is None or summary["floor_target_bps"][codec][side] == latency_paths.BITRATE.clamp(bps)
    # Each hop's pair measured back to back, the two pairs in opposite orders; not first (cold).
    order = summary["path_order"]
    assert order.index("server") == order.index("direct") + 1 > 1
    assert order.index("direct_h264") == order.index("server_h264") + 1
    assert paths["server"]["layout"] == "agent" and paths["server_screen"]["layout"] == "screen"
    # Every path measured frames; what it did not measure is counted, not dropped.
    for name, counts in summary["samples_by_path"].items():
        assert 0 < counts["measured"] <= counts["expected"], (name, counts)
        if not name.startswith("floor"):  # a test card: every age to its exact capture time
            assert counts["exact"] >= counts["measured"], (name, counts)
    assert summary["samples_expected"] == sum(c["expected"] for c in summary["samples_by_path"].values())
    assert summary["samples_measured"] == sum(c["measured"] for c in summary["samples_by_path"].values())
    assert {name: len(values) for name, values in samples.items()} == {
        name: n for name, n in summary["frames"].items() if name != "growth"
    }
    assert summary["hop_p50_ms"] == round(summary["server_p50_ms"] - summary["direct_p50_ms"], 1)
    assert (
        set(summary["floor_stages"])
        == set(summary["floor_h264_stages"])
        == {"decode", "compose", "encode", "total"}
    )
    growth = summary["growth"]
    assert growth["stalls"] >= 1  # the primary input did stall ...
    assert paths["growth"]["layout"] == "screen"  # ... in the real call's layout ...
    assert growth["cpu_load_s"] > 0  # ... with another process burning CPU meanwhile
    assert growth["first"]["n"] > 0 and growth["last"]["n"] > 0
    assert set(summary["targets"]) == {"hop_vs_floor", "growth_ms", "growth_p95_ms", "samples"}


def test_ages_are_read_to_the_exact_capture_time_not_the_stamps_whole_ms():
    captures = latency_paths.StampClock()
    log = latency_paths.StampLog("exact")
    log.captures = captures
    log.begin()
    for frame_id in range(20):
        frame = av.VideoFrame(1280, 720, "yuv420p")
        write_stamp(frame, Stamp.now(frame_id, captures()))
        log.record(frame)
    stranger = av.VideoFrame(1280, 720, "yuv420p")  # a frame id this camera never stamped
    write_stamp(stranger, Stamp.now(500))
    log.record(stranger)
    assert log.exact == 20 and len(log.rows) == 21
    ages = log.latencies
    assert all(0 <= ms < 1000 for ms in ages)
    assert any(ms != int(ms) for ms in ages[:20])  # fractions of a ms, not the stamp's whole ms
    assert ages[20] == int(ages[20])  # the stranger: the stamp's own age
    # Frame ids wrap at 2**16: the latest frame with the id is the one meant.
    captures.times = [float(i) for i in range(70_000)]
    assert captures.of(5) == 65_541.0 and captures.of(4_463) == 69_999.0 and captures.of(4_464) == 4_464.0
    assert latency_paths.StampClock().of(0) is None


def _clip(path: Path, frames: int = 30) -> Path:
    """A small video file: what ``--camera`` is given when there is no webcam."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    rng = np.random.default_rng(1)
    for _ in range(frames):
        picture = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), np.uint8), format="rgb24")
        for packet in stream.encode(picture):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


async def test_a_video_file_is_the_agents_camera_on_a_path(tmp_path: Path):
    clip = str(_clip(tmp_path / "camera.mp4"))
    assert "h264 320x240" in await latency.check_camera(clip)
    make, made = latency._cameras(clip)
    result = await latency_paths.direct("direct", make, "VP8", 1.0, 0.3)
    for track in made:
        track.stop()
    counts = result.log.counts()
    # The file's pictures, stamped when read, crossed the path (how many: the machine's load; a
    # camera's picture the sender had no time for is counted lost, as a live camera's would be).
    assert counts["measured"] >= 3 and counts["expected"] >= counts["measured"], counts
    assert result.config["receiver"] == "MarkerJitterBuffer"


def test_new_pictures_stamped_closer_than_a_display_refresh_are_counted():
    log = latency_paths.StampLog("path")
    stamped = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 128, np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    write_stamp(stamped, Stamp.now(1))
    # No stamp: the compositor's clock repeating a picture.
    repeat = av.VideoFrame.from_ndarray(np.zeros((540, 640), np.uint8), format="yuv420p")
    stamped.pts = 0
    log.record(stamped)  # not recording yet: not counted
    assert log.close_spaced_pct() is None
    log.begin()
    # 33 ms, 3.3 ms, 30 ms, 16.66 ms apart; a repeat 1 ms after a picture is not a new picture.
    for frame, pts in (
        (stamped, 1_000),
        (stamped, 4_000),
        (stamped, 4_300),
        (repeat, 4_400),
        (stamped, 7_000),
    ):
        frame.pts = pts
        log.record(frame)
    stamped.pts = 8_499
    log.record(stamped)
    assert (log.steps, log.close_steps) == (4, 2)
    assert log.close_spaced_pct() == 50.0


def test_a_missing_camera_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    with pytest.raises(CameraUnavailable, match="no such device"):
        latency.run(True, camera="/dev/video99")
    assert runner.main(["latency", "--quick", "--camera", str(tmp_path / "none.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["compose", "--camera", "/dev/video0"])
    assert "takes no --camera" in capsys.readouterr().err
