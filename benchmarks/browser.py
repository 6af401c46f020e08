"""Suite "browser": real Chromium calls, through the server and direct, same sources, one run.

(a) server: a real ``telepresence serve`` process (uvicorn on 127.0.0.1, in-memory store,
    default settings); the customer page ``/`` joins, the agent console ``/agent`` accepts;
    the customer's composite <video> and remote <audio> are measured.
(b) direct: a sending page and a receiving page with an RTCPeerConnection to each other (the
    SDP passes through Python), no server; both send audio and video, as in the server call.

Each side runs in its own headless Debian Chromium (the same two browsers, the same flags,
for both paths). The sending side's getUserMedia is replaced (benchmarks/browser_probes.py)
by a stamped 1280x720 30 fps canvas with a white flash every second and a WebAudio
microphone beeping with each flash; the customer side's is Chromium's fake device. Each call
has a warm-up, a quiet window, then a loaded window while a Python process busy-loops on a
core. The direct call prefers the video codec the server's call negotiated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import browser_summary as summary
from benchmarks import chrome
from benchmarks.browser_probes import init_script
from benchmarks.capacity_procs import tree_ticks
from benchmarks.chrome import agent_takes_the_call, chromium, customer_joins, new_page, state
from benchmarks.progress import progress
from media.answer import BROWSER_START_KBPS as START_KBPS
from telepresence.auth import Claims, TokenAuthority, load_or_create_secret

SECRET = "bench-browser-secret-0123456789abcdef"
VIEWPORT = {"width": 1280, "height": 800}
BOTH = ["camera", "microphone"]
DIRECT_PAGE = "http://127.0.0.1:9/direct"  # answered by page.route, never by the network


# A direct call, no server: the sending page offers, the receiving page answers (through Python),
# each sending a microphone and a camera, with the web client's connection settings (max-bundle,
# no ICE servers, ICE gathered before the description goes out) and the server's start bitrate.
# The sending page is laid out as the agent console's call view: its own camera in the first tile
# (a copy, web_client/js/agent-call.js's constraints, as the console shows it while the customer's
# picture is that camera) and the other side's camera in the second; the console's Chromium does
# that work on the server path, and it competes with its encoder for the same cores.
DIRECT_OFFER = """async ([codec, selfView]) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
  const show = (testid, track) => {
    const element = document.querySelector(`[data-testid="${testid}"]`);
    element.srcObject = new MediaStream([track]);
    element.play().catch(() => {});
  };
  const copy = stream.getVideoTracks()[0].clone();
  await copy.applyConstraints(selfView).catch(() => {});
  show("preview-video", copy);
  pc.addEventListener("track", ({ track }) => {
    show(track.kind === "video" ? "remote-video" : "remote-audio", track);
  });
  // One stream for both, as an app's addTrack(track, stream) does: the receiver syncs them.
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv", streams: [stream] });
  const video = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv", streams: [stream] });
  if (codec) {
    const [mime, fmtp] = [codec.split(" ")[0].toLowerCase(), codec.split(" ")[1] || ""];
    const all = RTCRtpReceiver.getCapabilities("video").codecs;
    const rank = (c) => (c.mimeType.toLowerCase() !== mime ? 2 : (c.sdpFmtpLine || "") === fmtp ? 0 : 1);
    video.setCodecPreferences([...all].sort((a, b) => rank(a) - rank(b)));
  }
  await pc.setLocalDescription();
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
  window.__directPc = pc;
  return pc.localDescription.sdp;
}"""

# The receiving page is laid out as the customer's call view (the product's stylesheet, the same
# elements): the agent's picture as wide as there, and over it a self-view as the customer page
# shows one (a copy of the camera, web_client/js/customer-call.js's constraints). Both matter to
# what Chromium's renderer shows: with a self-view over it, headless Chromium shows ~23 of the
# picture's 30 frames a second, on either path; with none, 28-29.
DIRECT_ANSWER = """async ([offer, selfView]) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
  const video = document.querySelector('[data-testid="remote-video"]');
  const audio = document.querySelector('[data-testid="remote-audio"]');
  const self = document.querySelector('[data-testid="local-video"]');
  const copy = stream.getVideoTracks()[0].clone();
  await copy.applyConstraints(selfView).catch(() => {});
  self.srcObject = new MediaStream([copy]);
  self.play().catch(() => {});
  pc.addEventListener("track", ({ track }) => {
    const element = track.kind === "video" ? video : audio;
    element.srcObject = new MediaStream([track]);
    element.play().catch(() => {});
  });
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  const [mic, camera] = pc.getTransceivers();
  await mic.sender.replaceTrack(stream.getAudioTracks()[0]);
  await camera.sender.replaceTrack(stream.getVideoTracks()[0]);
  mic.direction = camera.direction = "sendrecv";
  await pc.setLocalDescription();
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
  return pc.localDescription.sdp;
}"""

DIRECT_ACCEPT = "async (answer) => window.__directPc.setRemoteDescription({ type: 'answer', sdp: answer })"

# Start the receiving probes once the <video> and <audio> carry the call (either path).
RECEIVE = """async () => {
  const video = document.querySelector('[data-testid="remote-video"]');
  const audio = document.querySelector('[data-testid="remote-audio"]');
  window.__bench.pollStats();
  window.__bench.watchVideo(video);
  const track = audio.srcObject && audio.srcObject.getAudioTracks()[0];
  if (track) await window.__bench.tapAudio(track);
  return Boolean(track);
}"""

# The agent console's live latency receipt (the server's own view of the call): stage -> cells.
RECEIPT = """() => {
  const rows = [...document.querySelectorAll('[data-testid="receipt"] tbody tr')];
  const cells = (row) => [...row.querySelectorAll("td")].map((td) => td.textContent);
  const total = document.querySelector('[data-testid="receipt-total"]');
  const stages = Object.fromEntries(rows.map((row) => [row.dataset.stage, cells(row)]));
  return { stages, total: total ? total.textContent : null };
}"""


@dataclass(frozen=True)
class Plan:
    rounds: int
    window_s: float
    warmup_s: float  # after the connection, before the quiet window
    settle_s: float = 1.0  # after the CPU hog starts, before the loaded window


QUICK = Plan(rounds=1, window_s=10, warmup_s=3)
FULL = Plan(rounds=3, window_s=25, warmup_s=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _now_ms() -> float:
    return time.time() * 1000


# Each side's Chromium is launched with a label of this run's own (another run may be going on).
LABELS = {side: f"{side}-{os.getpid()}" for side in ("agent", "customer")}


@dataclass
class Server:
    url: str
    authority: TokenAuthority  # the server's: it reads the same TELEPRESENCE_SECRET
    pid: int

    def token(self, name: str) -> str:
        return self.authority.mint(Claims(name=name, role="agent", expires_at=time.time() + 3600))

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used: its process and its media workers."""
        return sum(tree_ticks(self.pid).values()) / os.sysconf("SC_CLK_TCK")


def _spawn_server(port: int, state_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(state_dir), "TELEPRESENCE_SECRET": SECRET}
    with (state_dir / "server.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "telepresence", "serve", "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )


@contextlib.asynccontextmanager
async def telepresence_server() -> AsyncIterator[Server]:
    """``telepresence serve`` in its own process, on a free loopback port, default settings."""
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as state_dir:
        port = _free_port()
        process = _spawn_server(port, Path(state_dir))
        try:
            for _ in range(1200):  # 60 s: the import alone can take a while on a busy machine
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                if process.poll() is not None:
                    log = (Path(state_dir) / "server.log").read_text()
                    raise RuntimeError(f"the server exited: {log}")
                await asyncio.sleep(0.05)
            else:
                log = (Path(state_dir) / "server.log").read_text()
                raise RuntimeError(f"the server did not listen within 60 s: {log[-2000:]}")
            authority = TokenAuthority(load_or_create_secret(SECRET, Path(state_dir) / "secret"))
            yield Server(f"http://127.0.0.1:{port}", authority, process.pid)
        finally:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


@contextlib.contextmanager
def cpu_hog():
    """A separate Python process busy-looping on one core, killed afterwards."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


async def _wait_for_frames(page, timeout_s: float = 30.0) -> None:
    """Until the receiving page has presented a few frames (and has its audio tapped)."""
    deadline = time.monotonic() + timeout_s
    tapped = False
    while time.monotonic() < deadline:
        tapped = await page.evaluate(RECEIVE) or tapped
        count = await page.evaluate("() => window.__bench.presented.length")
        if count >= 5 and tapped:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"no video (or no audio track) at the receiving page after {timeout_s} s")


async def _windows(sender, receiver, plan: Plan, label: str, server: Server | None) -> dict[str, Any]:
    """Warm-up, quiet window, loaded window; then everything both pages recorded."""
    await _wait_for_frames(receiver)
    await sender.evaluate("() => window.__bench.pollStats()")
    connected = await sender.evaluate("() => window.__bench.current()?.connected ?? null")
    start = max(_now_ms(), (connected or _now_ms()) + plan.warmup_s * 1000)
    await asyncio.sleep(max(0.0, (start - _now_ms()) / 1000))
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    browsers_cpu: dict[str, dict[str, float]] = {}
    receipts: dict[str, Any] = {}

    async def window(name: str) -> None:
        marks[f"{name}_t0"] = _now_ms()
        cpu_before = server.cpu_s() if server else 0.0
        browsers_before = chrome.browser_ticks(LABELS)
        for _ in progress(range(int(plan.window_s * 4)), desc=f"{label} {name}"):
            await asyncio.sleep(0.25)
        marks[f"{name}_t1"] = _now_ms()
        seconds = (marks[f"{name}_t1"] - marks[f"{name}_t0"]) / 1000
        browsers_cpu[name] = chrome.browser_cpu_pct(LABELS, browsers_before, seconds)
        if server:
            cpu[name] = (server.cpu_s() - cpu_before) / seconds * 100
            receipts[name] = await sender.evaluate(RECEIPT)

    load = os.getloadavg()[0]
    await window("quiet")
    load_avg = [round(load, 1), round(os.getloadavg()[0], 1)]
    with cpu_hog():
        await asyncio.sleep(plan.settle_s)
        await window("loaded")
    sent = await sender.evaluate("() => window.__bench.collect()")
    received = await receiver.evaluate("() => window.__bench.collect()")
    return {
        "sent": sent,
        "received": received,
        "marks": marks,
        "server_cpu_pct": cpu,
        "browser_cpu_pct": browsers_cpu,
        "load_avg": load_avg,
        "receipt": receipts,
    }


async def server_call(agents, customers, plan: Plan) -> dict[str, Any]:
    async with telepresence_server() as server:
        customer = await new_page(customers, permissions=BOTH, viewport=VIEWPORT)
        agent = await new_page(agents, permissions=BOTH, viewport=VIEWPORT)
        try:
            await customer.add_init_script(init_script(source=False))
            await agent.add_init_script(init_script(source=True))
            await customer_joins(customer, server.url)
            await agent_takes_the_call(agent, server, name="bench")
            await customer.wait_for_selector('[data-testid="call-state"][data-state="in_call"]')
            result = await _windows(agent, customer, plan, "server", server)
            result["page_errors"] = customer.errors + agent.errors  # type: ignore[attr-defined]
            result["customer_state"] = await state(customer).get_attribute("data-state")
            return result
        finally:
            await customer.context.close()
            await agent.context.close()


# The two pages' call views (web_client/index.html, web_client/agent.html): elements and classes only.
CUSTOMER_VIEW = """<!doctype html><html lang="en"><head><title>direct</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="customer" data-screen="call"><main class="layout"><section class="card">
<h2>Connected</h2><div class="media"><div class="stage">
<video data-testid="remote-video" class="remote" playsinline autoplay muted></video>
<video data-testid="local-video" class="local" playsinline autoplay muted></video>
</div><audio data-testid="remote-audio" autoplay></audio></div></section></main></body></html>"""
AGENT_VIEW = """<!doctype html><html lang="en"><head><title>direct</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body class="agent" data-screen="call"><main class="layout wide"><section class="card">
<h2>In a call</h2><div class="media agent-media">
<figure class="tile"><video data-testid="preview-video" playsinline autoplay muted></video></figure>
<figure class="tile" data-live="true">
<video data-testid="remote-video" playsinline autoplay muted></video></figure>
</div><audio data-testid="remote-audio" autoplay></audio></section></main></body></html>"""
STYLESHEET = Path(__file__).resolve().parent.parent / "web_client" / "style.css"
# The self-views of web_client/js/customer-call.js and agent-call.js.
CUSTOMER_SELF_VIEW = {"width": {"max": 320}, "height": {"max": 180}}
AGENT_SELF_VIEW = {"width": {"max": 640}, "height": {"max": 360}}


async def _call_view(page, html: str) -> None:
    origin = DIRECT_PAGE.rsplit("/", 1)[0]
    await page.route(DIRECT_PAGE, lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.route(
        origin + "/static/style.css", lambda route: route.fulfill(path=STYLESHEET, content_type="text/css")
    )
    await page.goto(DIRECT_PAGE)


async def direct_call(agents, customers, plan: Plan, codec: str | None) -> dict[str, Any]:
    receiver = await new_page(customers, permissions=BOTH, viewport=VIEWPORT)
    sender = await new_page(agents, permissions=BOTH, viewport=VIEWPORT)
    try:
        await receiver.add_init_script(init_script(source=False))
        await sender.add_init_script(init_script(source=True))
        await _call_view(receiver, CUSTOMER_VIEW)
        await _call_view(sender, AGENT_VIEW)
        # Both uploads start their estimates where the server's call starts them: like for like.
        offer = await sender.evaluate(DIRECT_OFFER, [codec, AGENT_SELF_VIEW])
        offer = chrome.with_start_bitrate(offer, START_KBPS)
        answer = await receiver.evaluate(DIRECT_ANSWER, [offer, CUSTOMER_SELF_VIEW])
        await sender.evaluate(DIRECT_ACCEPT, chrome.with_start_bitrate(answer, START_KBPS))
        result = await _windows(sender, receiver, plan, "direct", None)
        result["page_errors"] = receiver.errors + sender.errors  # type: ignore[attr-defined]
        return result
    finally:
        await receiver.context.close()
        await sender.context.close()


async def _run(plan: Plan) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    codec: str | None = None
    async with chromium(label=LABELS["agent"]) as agents, chromium(label=LABELS["customer"]) as customers:
        for index in range(plan.rounds):
            # Alternate which path goes first, so a change in the machine's load hits both alike;
            # the direct call prefers the video codec the server's call negotiated (round 0 learns it).
            if index % 2 == 0:
                via_server = summary.analyse(await server_call(agents, customers, plan))
                codec = codec or via_server["codec"]
                direct = summary.analyse(await direct_call(agents, customers, plan, codec))
            else:
                direct = summary.analyse(await direct_call(agents, customers, plan, codec))
                via_server = summary.analyse(await server_call(agents, customers, plan))
            runs.append({"server": via_server, "direct": direct})
    launched = {"chromium": chrome.launch_settings(), "start_kbps": START_KBPS}
    return {**summary.summarise(runs, window_s=plan.window_s), **launched}


def run(quick: bool) -> dict[str, Any]:
    return asyncio.run(_run(QUICK if quick else FULL))
