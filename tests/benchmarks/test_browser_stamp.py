"""The browser suite's stamp code: the frame id a page draws into each frame and Python reads back,
and the page scripts (stamp encoder, onset detector) run under Node when it is installed."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import browser_metrics as m
from benchmarks import browser_probes as probes
from tests.benchmarks.test_browser_suite import cells_of

# ------------------------------------------------------------------------------ stamp


def test_the_crc_table_is_the_bitwise_crc():
    table = m.crc_table()
    assert table == [m.crc8(b, 8) for b in range(256)]
    for value in random.Random(1).sample(range(1 << 16), 200):
        assert table[table[value >> 8] ^ (value & 0xFF)] == m.crc8(value, 16)


@pytest.mark.parametrize("frame_id", [0, 1, 29, 30, 1234, 65535])
def test_a_stamp_reads_back_through_grey_and_noise(frame_id):
    rng = random.Random(frame_id)
    cells = [c + rng.randint(-35, 35) for c in cells_of(frame_id, black=40, white=215)]
    assert m.decode_cells(cells) == frame_id
    assert m.decode_cells(cells_of(frame_id + (1 << 16))) == frame_id  # ids wrap at 16 bits


def test_what_is_not_a_stamp_reads_as_none():
    assert m.decode_cells([0] * 24) is None  # a dark corner (the mask makes it invalid)
    assert m.decode_cells([255] * 24) is None
    blended = cells_of(77)
    blended[5] = 128  # a cell between black and white: a blend of two frames
    assert m.decode_cells(blended) is None
    for bit in range(24):  # any one flipped bit fails the CRC
        flipped = cells_of(4321)
        flipped[bit] = 250 - flipped[bit]
        assert m.decode_cells(flipped) is None
    assert m.decode_cells(cells_of(1)[:-1]) is None


def _node() -> str | None:
    """Node.js: the one the playwright package ships (so a new machine has it), else the system's."""
    try:
        import playwright
    except ImportError:
        return shutil.which("node")
    bundled = Path(playwright.__file__).parent / "driver" / "node"
    return str(bundled) if bundled.exists() else shutil.which("node")


NODE = _node()
node = pytest.mark.skipif(NODE is None, reason="no Node.js (the playwright package ships one)")


def run_node(script: str) -> object:
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


@node
def test_the_page_draws_the_bits_python_reads():
    ids = [0, 1, 30, 255, 256, 4660, 65535, 65536 + 7]
    config = json.dumps(probes.config())
    bits = run_node(
        f"const CFG = {config};\n{probes.STAMP}\nconsole.log(JSON.stringify({ids}.map(stampBits)));"
    )
    assert bits == [m.stamp_bits(i) for i in ids]


@node
def test_the_onset_worklet_hears_each_beep_once():
    script = f"""
    const sampleRate = 48000;
    let currentFrame = 0;
    const messages = [];
    class AudioWorkletProcessor {{
      constructor() {{ this.port = {{ postMessage: (m) => messages.push(m) }}; }}
    }}
    let Processor = null;
    const registerProcessor = (name, cls) => {{ Processor = cls; }};
    {probes.WORKLET}
    const node = new Processor();
    // 0.5 s silence, beep 0.1 s, silence, a click 50 ms after the beep, beep at 1.5 s, silence.
    const beeps = [[24000, 28800], [72000, 76800]];
    const sample = (n) => {{
      for (const [a, b] of beeps) {{
        if (n >= a && n < b) return 0.5 * Math.sin((2 * Math.PI * 1000 * (n - a)) / 48000);
      }}
      return n === 31200 ? 0.4 : 0.001 * Math.sin(n);
    }};
    for (let block = 0; block < 100000 / 128; block++) {{
      const channel = new Float32Array(128).map((_, i) => sample(currentFrame + i));
      node.process([[channel]]);
      currentFrame += 128;
    }}
    console.log(JSON.stringify(messages.map((m) => [m.frame, m.offset])));
    """
    onsets = run_node(script)
    assert [frame for frame, _ in onsets] == [24002, 72002]  # the first sample above 0.1
    assert all(offset == frame % 128 for frame, offset in onsets)


def test_the_page_scripts_carry_the_python_constants():
    receiving = probes.init_script(source=False)
    sending = probes.init_script(source=True)
    assert "getUserMedia" not in receiving and "devices.getUserMedia =" in sending
    config = json.loads(sending.split("const CFG = ", 1)[1].split(";\n", 1)[0])
    assert config["cols"] * config["rows"] == m.STAMP_BITS
    assert config["mask"] == m.STAMP_MASK and config["crc"] == m.crc_table()
    assert config["flashFrames"] == m.FLASH_FRAMES and config["flashEvery"] == m.FLASH_EVERY
