"""Stamps survive real lossy coding (libvpx, libx264 through PyAV) and reject what is not a stamp."""

import fractions

import av
import numpy as np
import pytest

from media.stamp import Stamp, block_size, luma_view, read_luma, read_stamp, write_luma, write_stamp


def busy_frame(index: int, width: int, height: int, rng: np.random.Generator) -> av.VideoFrame:
    """A hard picture for a codec: a moving gradient with noise, colour included."""
    x = np.arange(width, dtype=np.int32)
    y = np.arange(height, dtype=np.int32)[:, None]
    luma = ((x + y + index * 7) % 256).astype(np.uint8)
    luma = np.clip(luma.astype(np.int16) + rng.integers(-3, 4, luma.shape), 0, 255).astype(np.uint8)
    frame = av.VideoFrame(width, height, "yuv420p")
    luma_view(frame)[:] = luma
    for i in (1, 2):
        plane = frame.planes[i]
        chroma = np.frombuffer(plane, np.uint8).reshape(height // 2, plane.line_size)
        chroma[:, : width // 2] = (index * 13 * i) % 256
    return frame


def roundtrip(codec_name: str, options: dict, width: int, height: int, bitrate: int, count: int):
    encoder = av.CodecContext.create(codec_name, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.bit_rate = bitrate
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.framerate = fractions.Fraction(30, 1)
    encoder.options = options
    decoder = av.CodecContext.create({"libx264": "h264"}.get(codec_name, codec_name), "r")
    rng = np.random.default_rng(1)
    sent, read = [], []
    for index in range(count):
        frame = busy_frame(index, width, height, rng)
        stamp = Stamp(time_ms=((1 << 32) - 50 + index * 33) % (1 << 32), frame_id=index * 997)
        write_stamp(frame, stamp)
        frame.pts = index
        sent.append(stamp)
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                read.append(read_stamp(decoded))
    for packet in encoder.encode(None):
        for decoded in decoder.decode(packet):
            read.append(read_stamp(decoded))
    return sent, read


VP8 = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
X264 = {"preset": "ultrafast", "tune": "zerolatency"}


@pytest.mark.parametrize(
    ("codec_name", "options", "width", "height", "bitrate", "min_exact"),
    [
        ("libvpx", VP8, 1280, 720, 1_000_000, 1.0),
        ("libvpx", VP8, 640, 360, 500_000, 1.0),
        ("libx264", X264, 1280, 720, 2_500_000, 1.0),
        ("libx264", X264, 640, 360, 500_000, 1.0),
        # Starved: x264 skips whole macroblocks, so some pictures really are the previous
        # one (or a blend); a stamp then reads as that older frame or as nothing, never wrong.
        ("libx264", X264, 1280, 720, 1_000_000, 0.5),
    ],
)
def test_stamp_survives_lossy_coding(codec_name, options, width, height, bitrate, min_exact):
    sent, read = roundtrip(codec_name, options, width, height, bitrate, count=24)
    assert len(read) == len(sent)
    exact = sum(r == s for r, s in zip(read, sent, strict=True))
    assert exact >= min_exact * len(sent)
    for index, stamp in enumerate(read):
        assert stamp is None or stamp in sent[: index + 1]


def test_stamp_round_trips_exactly_and_wraps():
    luma = np.full((720, 1280), 100, np.uint8)
    stamp = Stamp((1 << 32) - 1, 65535)
    write_luma(luma, stamp)
    assert read_luma(luma) == stamp
    assert Stamp(10, 0).age_ms(clock=((1 << 32) + 30) / 1000) == 20
    # Only the strip is touched.
    assert (luma[block_size(1280) :] == 100).all()
    with pytest.raises(ValueError):
        Stamp(1 << 32, 0)


def test_not_a_stamp_reads_as_none():
    rng = np.random.default_rng(2)
    assert read_luma(np.zeros((720, 1280), np.uint8)) is None
    assert read_luma(np.full((720, 1280), 255, np.uint8)) is None
    misses = [read_luma(rng.integers(0, 256, (360, 640), dtype=np.uint8)) for _ in range(50)]
    assert misses == [None] * 50
    assert read_luma(np.zeros((4, 1280), np.uint8)) is None
    assert read_luma(np.zeros((360, 100), np.uint8)) is None


def test_a_flipped_bit_fails_the_check():
    luma = np.full((360, 640), 128, np.uint8)
    write_luma(luma, Stamp(123456, 42))
    block = block_size(640)
    for bit in (2, 20, 40, 57):  # in time, id and crc fields
        damaged = luma.copy()
        cells = damaged[:block, bit * block : (bit + 1) * block]
        cells[:] = 235 - cells + 16
        assert read_luma(damaged) is None


def test_write_stamp_requires_yuv420p_and_reads_other_formats():
    frame = av.VideoFrame(640, 360, "rgb24")
    with pytest.raises(ValueError):
        write_stamp(frame, Stamp(1, 1))
    yuv = av.VideoFrame(640, 360, "yuv420p")
    write_stamp(yuv, Stamp(77, 7))
    assert read_stamp(yuv.reformat(format="bgr24")) == Stamp(77, 7)
