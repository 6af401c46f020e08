"""A real headless Chromium customer inside the lab's ``customer`` namespace (issue 13: every
media figure that matters to a customer is also measured in Chromium).

Chromium must run inside the customer's namespace, and its DevTools port would be there too (the
root namespace has no route into the lab), so the whole playwright driver runs there as one
process (:data:`DRIVER`, started by :func:`run_customer`) and prints its findings as one JSON
line: the page joins, waits to be in a call, waits for the agent's video to play, then holds
``hold_s`` seconds and reads the inbound video's ``getStats`` before and after, and the picture's
colours; from the call's start it also reads its own upload every half second (``uploads``: its
bandwidth estimate, the camera's bytes sent and frame width). :func:`inbound_figures` turns that into the figures the network test and the network
suite report. Used by tests/network/test_chromium_in_lab.py and ``benchmarks.network``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.netlab.namespaces import Lab

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]

# Run as ``python -c DRIVER BASE_URL HOLD_S`` in the customer's namespace. getUserMedia needs a
# secure context, which http://<server address> is not without the flag below.
DRIVER = r"""
import asyncio, json, sys, time
from playwright.async_api import async_playwright, expect
from benchmarks.chrome import BASE_ARGS, CHROMIUM, COUNT_FRAMES, FAKE_UI, new_page, playing, sample, state

# Every RTCPeerConnection the page makes, for getStats.
RECORD = '''(() => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
})();'''

INBOUND_VIDEO = '''async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") found = s;
  });
  if (!found) return null;
  const keys = ["framesDecoded", "framesReceived", "framesDropped", "freezeCount",
    "totalFreezesDuration", "pauseCount", "totalPausesDuration", "jitterBufferDelay",
    "jitterBufferEmittedCount", "packetsReceived", "packetsLost", "nackCount", "pliCount",
    "firCount", "keyFramesDecoded", "jitter", "frameWidth", "frameHeight", "framesPerSecond",
    "bytesReceived"];
  return Object.fromEntries(keys.map((k) => [k, found[k] ?? null]));
}'''


# The page's own upload: its estimate (the nominated pair's availableOutgoingBitrate) and camera.
OUTBOUND = '''async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return null;
  let estimate = null, sent = 0, width = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) estimate = s.availableOutgoingBitrate;
    if (s.type === "outbound-rtp" && s.kind === "video") {
      sent += s.bytesSent || 0;
      width = Math.max(width, s.frameWidth || 0);
    }
  });
  return { estimate, video_bytes_sent: sent, width };
}'''


async def sample_uploads(page, uploads, since):
    while True:
        upload = await page.evaluate(OUTBOUND)
        if upload is not None:
            uploads.append({"t": round(time.monotonic() - since, 2), **upload})
        await asyncio.sleep(0.5)


async def main(base, hold_s):
    args = [*BASE_ARGS, FAKE_UI, f"--unsafely-treat-insecure-origin-as-secure={base}"]
    out = {}
    sampler = None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = await new_page(browser, viewport={"width": 390, "height": 844})
            await page.add_init_script(RECORD)
            started = time.monotonic()
            await page.goto(base + "/")
            await page.get_by_test_id("name-input").fill("Lab customer")
            await page.get_by_test_id("topic-input").fill("my order has not arrived")
            await page.get_by_test_id("start-call").click()
            await expect(state(page)).to_have_attribute("data-state", "in_call", timeout=30_000)
            out["in_call_s"] = round(time.monotonic() - started, 3)
            out["uploads"] = []  # t: seconds since in_call
            sampler = asyncio.create_task(sample_uploads(page, out["uploads"], time.monotonic()))
            await playing(page, "remote-video", frames=30, timeout_s=20)
            out["playing_s"] = round(time.monotonic() - started, 3)
            video = page.get_by_test_id("remote-video")
            before, stats_before = await video.evaluate(COUNT_FRAMES), await page.evaluate(INBOUND_VIDEO)
            await page.wait_for_timeout(hold_s * 1000)
            after, stats_after = await video.evaluate(COUNT_FRAMES), await page.evaluate(INBOUND_VIDEO)
            width, height = after["width"], after["height"]
            points = [(width // 2, height // 2), (width // 4, height // 4), (3 * width // 4, height // 4),
                      (width // 4, 3 * height // 4), (3 * width // 4, 3 * height // 4)]
            out["colours"] = await sample(page, "remote-video", points, (width, height))
            out["before"], out["after"] = before, after
            out["stats_before"], out["stats_after"] = stats_before, stats_after
            out["page_errors"] = page.errors
        except Exception as exc:  # reported to the test, which fails with it
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            await browser.close()
    print(json.dumps(out), flush=True)


asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def unavailable() -> str | None:
    """Why a Chromium customer cannot run here, or None."""
    import importlib.util

    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "no playwright package"
    return None


def run_customer(lab: Lab, base: str, hold_s: float, screenshots: Path) -> dict[str, Any]:
    """Run :data:`DRIVER` in the customer's namespace against the server at ``base``; what it found.

    Raises RuntimeError (with the driver's stderr) when it printed nothing or found an error.
    """
    driver = lab.popen(
        "customer",
        [sys.executable, "-c", DRIVER, base, str(hold_s)],
        cwd=ROOT,
        env={**os.environ, "TELEPRESENCE_SCREENSHOTS": str(screenshots)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = driver.communicate(timeout=hold_s + 60)
    except subprocess.TimeoutExpired:
        lab.stop(driver)
        raise RuntimeError("the Chromium driver did not finish") from None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the driver printed nothing (exit {driver.returncode}): {stderr[-3000:]}")
    found = json.loads(lines[-1])
    if "error" in found:
        raise RuntimeError(f"{found['error']}\n{stderr[-2000:]}")
    return found


def _delta(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
    return (after.get(key) or 0) - (before.get(key) or 0)


def inbound_figures(found: dict[str, Any], hold_s: float) -> dict[str, Any]:
    """The page's inbound video over the held window: frames, freezes (Chromium's own count: a
    frame later than max(3 frame intervals, interval + 150 ms)), jitter buffer, loss handling."""
    before, after = found["stats_before"] or {}, found["stats_after"] or {}
    decoded = _delta(before, after, "framesDecoded")
    emitted = max(1, _delta(before, after, "jitterBufferEmittedCount"))
    return {
        "in_call_s": found["in_call_s"],
        "playing_s": found["playing_s"],
        "frames_presented": found["after"]["frames"] - found["before"]["frames"],
        "size": [found["after"]["width"], found["after"]["height"]],
        "framesDecoded": decoded,
        "fps": round(decoded / hold_s, 2),
        "framesDropped": _delta(before, after, "framesDropped"),
        "keyFramesDecoded": _delta(before, after, "keyFramesDecoded"),
        "freezeCount": _delta(before, after, "freezeCount"),
        "totalFreezesDuration_s": round(_delta(before, after, "totalFreezesDuration"), 3),
        "jitterBufferDelay_ms": round(1000 * _delta(before, after, "jitterBufferDelay") / emitted, 1),
        "bitrate_kbps": round(_delta(before, after, "bytesReceived") * 8 / hold_s / 1000, 1),
        "packetsReceived": _delta(before, after, "packetsReceived"),
        "packetsLost": _delta(before, after, "packetsLost"),
        "nackCount": _delta(before, after, "nackCount"),
        "pliCount": _delta(before, after, "pliCount"),
        "colours": found["colours"],
    }
