"""The voice driver on speech-like audio, the script driver with injected time, and spec errors."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media.avatar.controller import AvatarController
from media.avatar.drivers.script import ScriptDriver
from media.avatar.drivers.script_commands import (
    Expression,
    Gesture,
    Say,
    ScriptError,
    Wait,
    command_from_dict,
    parse_command,
    parse_script,
)
from media.avatar.drivers.voice import VoiceDriver, pcm_float, rms_dbfs
from media.avatar.events import AvatarEvent
from media.avatar.rig import NEUTRAL
from media.avatar.spec import SpecError, load_spec, loads_spec, shipped_looks

RATE = 48000


def speech_like(seconds: float, seed: int = 3) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Amplitude-modulated noise bursts (syllables) separated by quiet gaps; returns samples and bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    audio = rng.standard_normal(n) * 10 ** (-65 / 20)  # room noise
    bursts = []
    start = 0.2
    while start < seconds - 0.5:
        length = rng.uniform(0.25, 0.45)
        gap = rng.uniform(0.3, 0.5)
        inside = (t >= start) & (t < start + length)
        envelope = np.sin(np.pi * (t[inside] - start) / length) ** 0.5 * (
            0.6 + 0.4 * np.sin(2 * np.pi * 5 * t[inside])
        )
        audio[inside] += rng.standard_normal(inside.sum()) * 0.25 * envelope
        bursts.append((start, start + length))
        start += length + gap
    return np.clip(audio, -1, 1), bursts


def frames(audio: np.ndarray, samples: int = 960) -> list[av.AudioFrame]:
    """20 ms packed s16 stereo frames, as Opus decodes to."""
    out = []
    pcm = (audio * 32767).astype(np.int16)
    for i in range(0, len(pcm) - samples + 1, samples):
        stereo = np.repeat(pcm[i : i + samples], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = RATE
        out.append(frame)
    return out


def test_pcm_and_levels() -> None:
    assert rms_dbfs(np.zeros(100)) == -120
    assert rms_dbfs(np.ones(100) * 0.5) == pytest.approx(-6.02, abs=0.01)
    packed = frames(np.full(960, 0.5))[0]
    assert pcm_float(packed) == pytest.approx(np.full(960, 0.5), abs=1e-3)
    planar = av.AudioFrame.from_ndarray(np.full((2, 480), 0.25, np.float32), format="fltp", layout="stereo")
    assert pcm_float(planar) == pytest.approx(np.full(480, 0.25))


def test_mouth_opens_in_bursts_and_closes_in_gaps() -> None:
    audio, bursts = speech_like(6.0)
    voice = VoiceDriver()
    samples: list[tuple[float, float]] = []
    for i, frame in enumerate(frames(audio)):
        t = i * 0.02
        voice.feed(frame, t)
        # The renderer asks for the mouth at frame times, after the audio for that time arrived.
        for k in range(2):
            samples.append((t + 0.01 * k, voice.mouth_at(t + 0.01 * k)))
    inside = [m for t, m in samples for a, b in bursts if a + 0.06 <= t <= b - 0.06]
    gaps = [m for t, m in samples if all(not (a - 0.02 <= t <= b + 0.15) for a, b in bursts) and t > 0.1]
    assert np.mean(inside) > 0.5 and np.percentile(inside, 10) > 0.2
    assert np.max(gaps) < 0.1
    # In time: the mouth starts opening within 40 ms of a burst's start.
    for a, _ in bursts:
        opened = [t for t, m in samples if t >= a and m > 0.2]
        assert opened and opened[0] - a < 0.06


def test_voice_talking_events_and_a_stalled_stream_closes_the_mouth() -> None:
    audio, bursts = speech_like(3.0)
    controller = AvatarController()
    events: list[AvatarEvent] = []
    controller.subscribe(events.append)
    for i, frame in enumerate(frames(audio)):
        controller.voice.feed(frame, i * 0.02)
        controller.rig_at(i * 0.02)
    end = len(frames(audio)) * 0.02
    assert controller.rig_at(end + 0.3).mouth_open < 0.05  # no more audio: closed, not frozen open
    controller.rig_at(end + 1.0)
    kinds = [(e.kind, e.source) for e in events]
    assert kinds[0] == ("started_talking", "voice") and kinds[-1] == ("stopped_talking", "voice")
    assert abs(events[0].at - bursts[0][0]) < 0.08


# -- script ------------------------------------------------------------------


def test_say_timing_caption_mouth_and_events() -> None:
    script = ScriptDriver(seconds_per_char=0.1)
    events: list[AvatarEvent] = []
    script.subscribe(events.append)
    script.submit(Say("Hello, welcome!"), 10.0)  # 15 characters: 1.5 s
    script.submit(Wait(0.5), 10.0)
    script.submit("say Next one", 10.0)
    assert script.caption_at(10.5) == "Hello, welcome!" and script.talking
    mouth = [script.mouth_at(10 + i / 30) for i in range(45)]
    assert max(mouth) > 0.5 and min(mouth[3:-3]) < 0.3  # moves, it is not just held open
    script.update(11.6)
    assert script.caption_at(11.6) is None and script.mouth_at(11.6) == 0
    script.update(12.2)
    assert script.caption_at(12.2) == "Next one"
    script.update(20)
    assert [(e.kind, e.at, e.text) for e in events] == [
        ("started_talking", 10.0, "Hello, welcome!"),
        ("stopped_talking", pytest.approx(11.5), "Hello, welcome!"),
        ("started_talking", pytest.approx(12.0), "Next one"),
        ("stopped_talking", pytest.approx(12.8), "Next one"),
    ]
    assert not script.busy


def test_interrupt_stops_speech_and_flushes_the_queue_at_once() -> None:
    script = ScriptDriver()
    events: list[AvatarEvent] = []
    script.subscribe(events.append)
    script.load(
        "say A long sentence that takes a while to say.\ngesture nod\nsay More.\nexpression smile\n", 0.0
    )
    script.submit("gesture wave", 0.0)
    script.update(0.8)
    assert script.talking and len(script.queue) == 4
    script.submit("interrupt", 1.0)
    assert not script.talking and not script.queue and script.caption_at(1.0) is None
    assert script.mouth_at(1.0) == 0
    assert events[-1].kind == "stopped_talking" and events[-1].interrupted and events[-1].at == 1.0
    # The cut-off gesture fades out instead of jumping back.
    before = script.offset_at(1.0)
    after = script.offset_at(1.0 + 1 / 30)
    assert abs(before.hand - after.hand) < 0.2
    assert script.offset_at(2.0).hand == 0
    script.update(10)
    assert [e.kind for e in events].count("started_talking") == 1


def test_expressions_gestures_look_and_states_move_the_pose() -> None:
    script = ScriptDriver()
    events: list[AvatarEvent] = []
    script.subscribe(events.append)
    script.submit(Expression("smile", hold=2.0), 0.0)
    assert script.offset_at(0.0).smile == pytest.approx(0.0)
    assert script.offset_at(0.15).smile == pytest.approx(0.425, abs=0.05)  # eased in
    assert script.offset_at(1.0).smile == pytest.approx(0.85)
    script.update(3.0)
    assert script.offset_at(3.0).smile == pytest.approx(0.0)  # the hold ended, eased out
    script.submit(Gesture("nod"), 5.0)
    assert max(abs(script.offset_at(5 + i / 30).pitch) for i in range(36)) > 5
    script.submit("look screen", 7.0)
    assert script.offset_at(8.0).gaze_x < -0.4
    script.submit("listen", 9.0)
    script.submit("idle", 9.5)
    assert [e.text for e in events if e.kind == "state"] == ["listening", "idle"]


def test_script_file_errors_name_the_line() -> None:
    with pytest.raises(ScriptError, match="line 3: unknown command 'dance'") as info:
        parse_script("say hi\n\ndance now\n")
    assert info.value.line == 3
    with pytest.raises(ScriptError, match="line 2: wait must be"):
        parse_script("# greeting\nwait soon\n")
    with pytest.raises(ScriptError, match="line 1: unknown expression 'smirk'"):
        parse_script("expression smirk")
    with pytest.raises(ScriptError, match="usage: gesture NAME"):
        parse_command("gesture")
    commands = parse_script('say "Hi # there"  # a comment\nexpression smile 2\nlook camera\n')
    assert commands[0] == Say("Hi # there") and commands[1] == Expression("smile", 2.0)


def test_guardrails_reject_what_the_brand_does_not_allow() -> None:
    spec = load_spec("harbor")  # no surprise, no shake
    script = ScriptDriver(spec)
    with pytest.raises(ScriptError, match="not allowed by the Harbor spec"):
        script.submit("expression surprise", 0)
    with pytest.raises(ScriptError, match="gesture 'shake' is not allowed"):
        script.submit({"command": "gesture", "name": "shake"}, 0)
    with pytest.raises(ScriptError, match="line 2: .*not allowed"):
        script.load("say ok\ngesture shake\n", 0)
    assert not script.queue and not script.talking  # nothing of a bad script ran
    script.submit("gesture nod", 0)


def test_commands_from_json() -> None:
    assert command_from_dict({"command": "say", "text": "Hi", "duration": 2}) == Say("Hi", 2.0)
    with pytest.raises(ScriptError, match="unknown command 'fly'"):
        command_from_dict({"command": "fly"})
    with pytest.raises(ScriptError, match="missing field 'text'"):
        command_from_dict({"command": "say"})
    with pytest.raises(ScriptError, match="unexpected field"):
        command_from_dict({"command": "look", "target": "camera", "speed": 3})
    with pytest.raises(ScriptError, match="look at 'floor'"):
        command_from_dict({"command": "look", "target": "floor"})


def test_controller_combines_script_and_idle() -> None:
    controller = AvatarController()
    controller.submit("expression surprise", 0.0)
    rig = controller.rig_at(1.0)
    assert rig.brows > 0.8 and rig.mouth_open > 0.3
    controller.submit("say Hello", 1.0)
    assert controller.caption_at(1.1) == "Hello"
    assert controller.rig_at(5.0).mouth_open == pytest.approx(NEUTRAL.mouth_open + 0.4, abs=0.01)


# -- spec --------------------------------------------------------------------


def test_shipped_looks_load() -> None:
    assert {"aurora", "harbor"} <= set(shipped_looks())
    aurora, harbor = load_spec("aurora"), load_spec("harbor")
    assert aurora.name == "Aurora" and aurora.safe_zone is not None
    assert harbor.hair == "short" and "shake" not in harbor.gestures
    assert aurora.colors["skin"] != harbor.colors["skin"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[colors]\nskin = "pink"\n', "colors.skin"),
        ('[colors]\nsparkle = "#ffffff"\n', "colors.sparkle"),
        ('[style]\nhair = "mohawk"\n', "style.hair"),
        ("[safe_zone]\nx = 0.9\ny = 0.1\nwidth = 0.2\nheight = 0.1\n", "safe_zone"),
        ('[safe_zone]\nx = "left"\ny = 0\nwidth = 0.1\nheight = 0.1\n', "safe_zone.x"),
        ('[guardrails]\nexpressions = ["smile", "smirk"]\n', "guardrails.expressions"),
        ("colour = 3\n", "colour"),
        ('[images]\nlogo = "missing.png"\n', "images.logo"),
    ],
)
def test_spec_errors_name_the_field(text: str, where: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        loads_spec(text, base_dir=tmp_path)
    assert info.value.field == where
    assert str(info.value).startswith(f"{where}: ")


def test_spec_syntax_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="line 3") as info:
        loads_spec('name = "A"\n[colors]\nskin = #fff\n')
    assert info.value.line == 3
    bad = tmp_path / "look.json"
    bad.write_text('{\n  "name": "A",\n  "colors": {"skin": "#ffffff",}\n}\n')
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.line == 3
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "nope.toml")


def test_spec_images_load_relative_to_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "logo.png"), np.full((40, 80, 4), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "room.jpg"), np.full((90, 160, 3), 60, np.uint8))
    (tmp_path / "brand.json").write_text(
        json.dumps(
            {
                "name": "Brand",
                "images": {"logo": "logo.png", "background": "room.jpg"},
                "safe_zone": {"x": 0.8, "y": 0.05, "width": 0.15, "height": 0.1},
            }
        )
    )
    spec = load_spec(tmp_path / "brand.json")
    assert spec.logo_image.shape[2] == 4 and spec.background_image.shape == (90, 160, 3)
    from media.avatar.renderer import AvatarRenderer

    frame = AvatarRenderer(spec, 640, 360).render_bgr(NEUTRAL)
    zone = spec.safe_zone.pixels(640, 360)
    assert frame[zone[1] : zone[3], zone[0] : zone[2]].mean() > 200  # the white logo, in the zone
