"""One side of a network-suite call: an aiortc "browser" in its own namespace of the lab.

    python -m benchmarks.network_peer agent BASE_URL --token TOKEN [--width 1280 --height 720]
    python -m benchmarks.network_peer customer BASE_URL --hold-s SECONDS

Each waits for the server's /healthz (the suite's own process cannot reach a namespace), plays
its side of ONE call through the protocol and prints JSON lines on stdout, the last one its
result (the suite computes every figure from them; clocks are shared by all namespaces):

- agent: ``{"event": "ready"}`` once available (auto-answer on); at the end
  ``{"event": "result", "camera_frames", "camera_s"}`` (the frames its camera produced, to tell
  a CPU-starved sender from a lossy network).
- customer: ``{"event": "media", "call_started", "first_frame", "first_stamped"}`` (wall-clock
  seconds) at the first agent frame it decodes; after ``--hold-s`` more seconds,
  ``{"event": "result", "frames": [[t, g2g_ms | null, last packet's arrival | null,
  frame id | null], ...],
  "bytes": [[t, RTP bytes of the composite], ...], "lost": [[t, packets lost], ...], "size",
  "codec", "loss"}`` then hangs up (``loss``: the composite receiver's gaps, NACKs, PLIs and
  retransmissions, benchmarks.network_media.LossLog).
- either: ``{"event": "error", "error"}`` on a failure (exit 1).

The agent sends a stamped moving test card with sensor noise (benchmarks.network_media) encoded as
a browser's realtime encoder would (media.peers.tune_video_sender) and a tone; it never decodes what it
receives (the preview of the composite), which would only cost the shared cores. The customer
sends a tone (no camera: the suite measures the composite's path), decodes the composite and
reads each frame's stamp the moment aiortc hands the decoded frame over: glass-to-glass.
The peers lay out their media sections from media.sections, as the web client does (copied
from media/browser.py so this module does not change under the suite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import httpx
import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.network_media import LossLog, NoisyCard, Presented
from media.aiortc_internals import stop_decoding, tap_received_rtp
from media.browser import ToneTrack
from media.peers import enable_low_latency_receive, negotiated_codec, tune_video_sender
from media.sections import sections_of


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Signalling:
    """The protocol over one WebSocket: send, and wait for a message type (others are kept)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.kept: list[dict[str, Any]] = []

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type, **fields}))

    async def expect(self, type: str, timeout: float) -> dict[str, Any]:
        for index, message in enumerate(self.kept):
            if message["type"] == type:
                return self.kept.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == type:
                    return message
                if message["type"] == "error":
                    raise RuntimeError(f"server said {message}")
                self.kept.append(message)


class Peer:
    """An aiortc peer laid out like the web client's for ``role``; ``on_video(index, track)``
    gets each received video track (by video section index), audio is drained."""

    def __init__(self, role: str, tracks: dict[str, MediaStreamTrack], on_video: Any) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.tasks: set[asyncio.Task[None]] = set()
        self.marks: dict[str, float] = {}  # wall-clock times of the set-up's steps, by name

        @self.pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if self.pc.iceConnectionState == "completed":
                self.marks.setdefault("ice_connected", time.time())

        @self.pc.on("connectionstatechange")
        def on_connection() -> None:
            if self.pc.connectionState == "connected":  # DTLS done too
                self.marks.setdefault("dtls_connected", time.time())

        for section in sections_of(role):
            track = tracks.get(section.name)
            direction = section.direction if track else section.direction_without_track or section.direction
            self.pc.addTransceiver(
                track if track and direction != "recvonly" else section.kind, direction=direction
            )

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
            if track.kind == "audio":
                self.own(self._drain(track))
            else:
                videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
                on_video(videos.index(transceiver), transceiver.receiver, track)

    def own(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def negotiate(self, signalling: Signalling) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers (no trickle ICE)
        self.marks["offer_sent"] = time.time()
        await signalling.send("webrtc_offer", sdp=self.pc.localDescription.sdp)
        answer = await signalling.expect("webrtc_answer", timeout=30)
        self.marks["answered"] = time.time()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def packets_lost(self) -> int:
        """Packets of the received video streams aiortc counts lost (inbound-rtp stats)."""
        stats = (await self.pc.getStats()).values()
        return sum(s.packetsLost for s in stats if s.type == "inbound-rtp" and s.kind == "video")

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
        await self.pc.close()


async def agent(ws_url: str, token: str, width: int, height: int) -> None:
    signalling = Signalling(await websockets.connect(ws_url, max_size=None))
    await signalling.send("login", token=token)
    await signalling.expect("logged_in", 30)
    await signalling.send("auto_answer", enabled=True)
    await signalling.send("set_status", status="available")
    await signalling.expect("agent_status", 30)
    say("ready")
    await signalling.expect("call_started", timeout=300)
    camera = NoisyCard(width, height)

    def on_video(index: int, receiver: Any, track: MediaStreamTrack) -> None:
        stop_decoding(receiver)  # the preview and the customer's sections: never looked at

    peer = Peer("agent", {"camera": camera, "mic": ToneTrack(440, amplitude=4000)}, on_video)
    for transceiver in peer.pc.getTransceivers():
        if transceiver.sender.track is camera:
            tune_video_sender(transceiver.sender)
    started = time.monotonic()
    try:
        await peer.negotiate(signalling)
        await signalling.expect("call_ended", timeout=600)
        say("result", camera_frames=camera.frames, camera_s=round(time.monotonic() - started, 3))
    finally:
        await peer.close()
        await signalling.ws.close()


async def customer(ws_url: str, hold_s: float) -> None:
    signalling = Signalling(await websockets.connect(ws_url, max_size=None))
    await signalling.send("join", name="Network suite customer")
    await signalling.expect("welcome", 30)
    await signalling.expect("call_started", timeout=120)
    call_started = time.time()
    presented = Presented()
    losses = LossLog()
    composite: dict[str, Any] = {}

    def on_video(index: int, receiver: Any, track: MediaStreamTrack) -> None:
        if index == 0:  # the camera section: back comes the composite
            composite["transceiver"] = next(t for t in peer.pc.getTransceivers() if t.receiver is receiver)
            presented.receiver = receiver
            peer.own(presented.drain(track))
            tap_received_rtp(receiver, lambda packet: (presented.on_rtp(packet), losses.on_rtp(packet)))
            losses.watch(receiver)
        else:
            stop_decoding(receiver)

    peer = Peer("customer", {"mic": ToneTrack(880, amplitude=4000)}, on_video)
    enable_low_latency_receive(peer.pc)  # the marker-bit jitter buffer, as the server's receivers
    try:
        await peer.negotiate(signalling)
        await asyncio.wait_for(presented.first_stamped.wait(), 60)
        first = presented.frames[0][0]
        first_stamped = next(f[0] for f in presented.frames if f[1] is not None)
        marks = {
            **peer.marks,
            "first_rtp": presented.first_rtp,
            "first_frame": first,
            "first_stamped": first_stamped,
        }
        phases = {
            name: round((t - call_started) * 1000) for name, t in sorted(marks.items(), key=lambda m: m[1])
        }
        say(
            "media",
            call_started=call_started,
            first_frame=first,
            first_stamped=first_stamped,
            phases_ms=phases,
        )
        samples: list[tuple[float, int]] = []
        lost: list[tuple[float, int]] = []
        end = time.time() + hold_s
        while time.time() < end:
            samples.append((time.time(), presented.bytes))
            lost.append((time.time(), await peer.packets_lost()))
            await asyncio.sleep(min(0.5, max(0.0, end - time.time())))
        codec = negotiated_codec(composite["transceiver"]) if "transceiver" in composite else None
        say(
            "result",
            frames=[
                [round(t, 4), age, arrived and round(arrived, 4), ident]
                for t, age, arrived, ident in presented.frames
            ],
            bytes=[[round(t, 3), b] for t, b in samples],
            lost=[[round(t, 3), n] for t, n in lost],
            size=presented.size,
            codec=codec,
            loss=losses.to_json(),
        )
        await signalling.send("end_call")
        await signalling.expect("call_ended", timeout=30)
    finally:
        await peer.close()
        await signalling.ws.close()


async def wait_healthy(base_url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"{base_url}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("agent", "customer"))
    parser.add_argument("base_url", help="http://HOST:PORT of the server")
    parser.add_argument("--token", help="the agent's login token")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument(
        "--hold-s", type=float, default=10.0, help="customer: seconds of media after the first frame"
    )
    args = parser.parse_args(argv)
    ws_url = args.base_url.replace("http", "ws", 1) + "/ws"
    try:
        await wait_healthy(args.base_url)
        if args.role == "agent":
            await agent(ws_url, args.token, args.width, args.height)
        else:
            await customer(ws_url, args.hold_s)
    except Exception as exc:  # reported to the suite, which fails the profile with it
        say("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
