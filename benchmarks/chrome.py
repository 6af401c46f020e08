"""Chromium for the media browser tests and the benchmarks (browser, network): Debian's Chromium with fake
devices, fake camera clips, JavaScript probes that prove a <video> element really plays, the
two pages' way into a call (a customer joins on `/`, an agent accepts on `/agent`), each labelled
browser's CPU, and the server's start bitrate for a direct call's descriptions."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from benchmarks.capacity_procs import tree_ticks

CHROMIUM = Path("/usr/bin/chromium")
BASE_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    # Remote audio starts without a click (a real customer has clicked "Talk to a person").
    "--autoplay-policy=no-user-gesture-required",
]
# Accept every media prompt, getDisplayMedia's included: with the fake device, Chromium then
# shares a fake "screen" (1280x720, green with moving shapes), no test hook needed.
FAKE_UI = "--use-fake-ui-for-media-stream"
# More switches for every Chromium a suite or test starts (e.g. to try a renderer setting).
EXTRA_ARGS_ENV = "TELEPRESENCE_CHROMIUM_ARGS"
HEADED_ENV = "TELEPRESENCE_CHROMIUM_HEADED"  # set (with DISPLAY): headed, not headless
SCREENSHOTS = Path(os.environ.get("TELEPRESENCE_SCREENSHOTS") or tempfile.mkdtemp(prefix="screens-"))
TIMEOUT_MS = 10_000

RED = (200, 20, 20)
LABEL_SWITCH = "--telepresence-bench"
START_BITRATE = "x-google-start-bitrate"
NOT_CODECS = ("rtx", "red", "ulpfec", "flexfec-03")  # video payload types that carry no picture of their own


def browser_pid(label: str) -> int | None:
    """The browser process of the Chromium launched with ``label`` (its renderers are its descendants)."""
    wanted = f"{LABEL_SWITCH}={label}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if wanted in argv and not any(arg.startswith(b"--type=") for arg in argv):
            return int(entry)
    return None


def browser_ticks(labels: dict[str, str]) -> dict[str, dict[int, int] | None]:
    """CPU ticks of each labelled Chromium (``label`` of :func:`chromium`), by process (renderers
    come and go with the calls); None for one not running."""
    pids = {side: browser_pid(label) for side, label in labels.items()}
    return {side: tree_ticks(pid, reaped=False) if pid is not None else None for side, pid in pids.items()}


def browser_cpu_pct(
    labels: dict[str, str], before: dict[str, dict[int, int] | None], seconds: float
) -> dict[str, float | None]:
    """Each labelled Chromium's CPU since ``before`` (:func:`browser_ticks`), % of one core (None:
    not found)."""
    after = browser_ticks(labels)
    hz = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float | None] = {}
    for side in labels:
        then, now = before[side], after[side]
        if then is None or now is None:
            cpu[side] = None
            continue
        ticks = sum(t - then.get(pid, 0) for pid, t in now.items())
        cpu[side] = round(ticks / hz / seconds * 100, 1)
    return cpu


def write_card(
    path: Path, rgb: tuple[int, int, int] = RED, size: tuple[int, int] = (640, 360), frames: int = 4
) -> Path:
    """A flat colour card as a Y4M clip (Chromium loops it as its fake camera)."""
    width, height = size
    r, g, b = rgb
    # BT.601 limited range, which is how Chromium reads a fake capture clip.
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    planes = [
        np.full((height, width), round(y), np.uint8),
        np.full((height // 2, width // 2), round(u), np.uint8),
        np.full((height // 2, width // 2), round(v), np.uint8),
    ]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            for plane in planes:
                out.write(plane.tobytes())
    return path


def launch_settings() -> dict[str, object]:
    """What :func:`chromium` is told beyond its defaults: a figure taken so must say so."""
    return {"args": os.environ.get(EXTRA_ARGS_ENV, ""), "headed": bool(os.environ.get(HEADED_ENV))}


def with_start_bitrate(sdp: str, kbps: int) -> str:
    """``sdp`` with libwebrtc's ``x-google-start-bitrate`` on every video codec but RTX/FEC/RED, as
    the server's answers carry it (media.answer.BROWSER_START_KBPS): given to a direct call's remote
    descriptions, its browsers start their upload estimates where the server's call starts them."""
    rtpmap = re.compile(r"a=rtpmap:(\d+) ([\w-]+)/90000")
    video = {m.group(1) for m in rtpmap.finditer(sdp) if m.group(2).lower() not in NOT_CODECS}
    lines = sdp.split("\r\n")
    with_fmtp = {line.split()[0][len("a=fmtp:") :] for line in lines if line.startswith("a=fmtp:")}
    out = []
    for line in lines:
        fmtp = line.startswith("a=fmtp:") and line.split()[0][len("a=fmtp:") :]
        out.append(f"{line};{START_BITRATE}={kbps}" if fmtp in video else line)
        found = rtpmap.match(line)
        if found and found.group(1) in video and found.group(1) not in with_fmtp:
            out.append(f"a=fmtp:{found.group(1)} {START_BITRATE}={kbps}")
    return "\r\n".join(out)


@contextlib.asynccontextmanager
async def chromium(
    *, fake_ui: bool = True, camera_clip: Path | None = None, label: str | None = None
) -> AsyncIterator[Browser]:
    """Debian's Chromium; ``label`` marks its browser process's command line (see :func:`browser_pid`)."""
    args = [*BASE_ARGS, *shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))]
    if label is not None:
        args.append(f"{LABEL_SWITCH}={label}")  # Chromium ignores a switch it does not know
    if fake_ui:
        args.append(FAKE_UI)
    if camera_clip is not None:
        args.append(f"--use-file-for-fake-video-capture={camera_clip}")
    async with async_playwright() as playwright:
        # A headed Chromium (on an X display, e.g. Xvfb's) where asked: its renderer paces video
        # on the display's refresh, which headless Chromium only imitates.
        headless = not os.environ.get(HEADED_ENV)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=args, headless=headless
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, *, permissions: Sequence[str] | None = None, **options) -> Page:
    """A page in a fresh context; ``permissions`` grants camera/microphone without the fake UI."""
    context: BrowserContext = await browser.new_context(**options)
    if permissions is not None:
        await context.grant_permissions(list(permissions))
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


# Count the frames a <video> presents (requestVideoFrameCallback), once per element.
COUNT_FRAMES = """(video) => {
  if (!video.__frames) {
    video.__frames = { n: 0 };
    const tick = () => { video.__frames.n += 1; video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
  }
  return { frames: video.__frames.n, time: video.currentTime, width: video.videoWidth,
           height: video.videoHeight, paused: video.paused,
           track: video.srcObject?.getVideoTracks?.()[0]?.id ?? null };
}"""

# The RGB of a few points of the frame on show, drawn at its own size.
# The picture drawn at ``frame``'s size, as the page's 16:9 video box shows it whatever size
# arrives (the agent's camera is forwarded at its own size, the composite at the server's).
SAMPLE = """(video, [points, frame]) => {
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = frame;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, frame[0], frame[1]);
  return points.map(([x, y]) => {
    const d = context.getImageData(x - 2, y - 2, 5, 5).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
    return sum.map((s) => Math.round(s / (d.length / 4)));
  });
}"""


async def playing(page: Page, testid: str, *, frames: int = 10, timeout_s: float = 20.0) -> dict:
    """Wait until the <video> shows ``frames`` new frames with time moving on; its last probe."""
    video = page.get_by_test_id(testid)
    first = await video.evaluate(COUNT_FRAMES)
    waited = 0.0
    while True:
        await page.wait_for_timeout(250)
        waited += 0.25
        probe = await video.evaluate(COUNT_FRAMES)
        if probe["track"] != first["track"]:
            first = probe  # the element shows another track now: count anew
        elif probe["time"] < first["time"]:
            # One track's clock went back: the sender's RTP timestamps jumped back (a switch between
            # the composite and a forwarded camera on different timelines, say).
            raise AssertionError(f"{testid}'s time went back on one track: first {first}, then {probe}")
        elif (
            probe["frames"] - first["frames"] >= frames
            and probe["time"] > first["time"]
            and probe["width"] > 0
        ):
            return probe
        if waited > timeout_s:
            raise AssertionError(f"{testid} is not playing: first {first}, last {probe}")


async def sample(
    page: Page, testid: str, points: Sequence[tuple[int, int]], frame: tuple[int, int] = (640, 360)
) -> list[list[int]]:
    """The colours at ``points`` of the video's picture drawn at ``frame``'s size (the tests' 360p)."""
    return await page.get_by_test_id(testid).evaluate(SAMPLE, [[list(p) for p in points], list(frame)])


def at_most(probe: dict, size) -> bool:
    """Whether a playing video's picture is ``size`` or smaller at its aspect (16:9): the
    composite, or the agent's camera forwarded as it came while its browser ramps up."""
    width, height = probe["width"], probe["height"]
    return 0 < width <= size.width and 0 < height <= size.height and abs(width * 9 - height * 16) <= 16


def is_red(rgb: Sequence[int]) -> bool:
    r, g, b = rgb
    return r > 140 and g < 90 and b < 90


def is_green(rgb: Sequence[int]) -> bool:
    r, g, b = rgb
    return g > 60 and g > r + 40 and g > b + 40


async def until_colours(
    page: Page, testid: str, checks: Sequence[tuple[tuple[int, int], object]], timeout_s: float = 15.0
):
    """Sample until every point passes its check (the layout cross-fades, frames take a moment)."""
    waited = 0.0
    while True:
        points = [point for point, _ in checks]
        colours = await sample(page, testid, points)
        if all(check(colour) for (_, check), colour in zip(checks, colours, strict=True)):  # type: ignore[operator]
            return colours
        if waited > timeout_s:
            raise AssertionError(f"{testid}: colours {colours} at {points} never matched")
        await page.wait_for_timeout(200)
        waited += 0.2


def state(page: Page):
    return page.get_by_test_id("call-state")


async def customer_joins(
    page: Page, url: str, name: str = "Ann", topic: str = "my order has not arrived"
) -> None:
    await page.goto(url + "/")
    await page.get_by_test_id("name-input").fill(name)
    await page.get_by_test_id("topic-input").fill(topic)
    await page.get_by_test_id("start-call").click()
    await expect(page.get_by_test_id("queue-position")).to_have_text("1")


async def agent_takes_the_call(page: Page, server, name: str = "sam") -> None:
    """``server`` has ``url`` and ``token(name)`` (tests.conftest.LiveServer, or the benchmark's)."""
    await page.goto(f"{server.url}/agent#token={server.token(name)}")
    await page.get_by_test_id("go-available").click()
    await page.get_by_test_id("accept").click()
    await expect(state(page)).to_have_attribute("data-state", "in_call")
