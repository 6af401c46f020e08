"""A process of capacity-suite clients: several calls, each an agent and a customer, cheap to run.

    python -m benchmarks.capacity_clients VIDEO_LOOP OPUS_LOOP

reads one JSON command a line on stdin and answers one JSON line on stdout:

- ``{"cmd": "add", "url": WS_URL, "token": AGENT_TOKEN, "name": NAME, "check": bool}``: the
  agent signs in (auto-answer, available), the customer joins, both negotiate; answers when
  the customer has its first frame: ``{"ok": true, "setup_s", "codec"}`` or ``{"ok": false, "error"}``.
- ``{"cmd": "stats", "t0": WALL_S, "t1": WALL_S}``: per call, what happened in that window.
- ``{"cmd": "layout", "layout": NAME}``: every agent sets its call's layout.
- ``{"cmd": "decode", "frames": N}``: check calls decode their next N frames (stamps).
- ``{"cmd": "close"}`` (or stdin closing): every call ends, every peer closes, the process exits.

The agent sends the pre-encoded loops (:mod:`benchmarks.capacity_media`) as its camera and
microphone; the customer sends the tone as its microphone and counts the composite's frames
without decoding them (a ``check`` call also decodes, to read the stamps). Nothing received
is decoded otherwise: the agent's preview and both voices are only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.capacity_media import (
    ABS_CAPTURE_TIME_ID,
    CountingBuffer,
    EncodedLoop,
    FrameProbe,
    LoopTrack,
    PacketCounter,
    encode_video_loop,
    offer_abs_capture_time,
)
from media import aiortc_internals as internals
from media.capture_clock import align_sender_reports
from media.peers import negotiated_codec
from media.sections import sections_of

logger = logging.getLogger("benchmarks.capacity_clients")


class Signal:
    """One protocol WebSocket, read all the time (an unread socket backs up the server's outbox)."""

    def __init__(self, ws: websockets.ClientConnection, label: str) -> None:
        self.ws = ws
        self.label = label
        self.received: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"{label} reader")

    @classmethod
    async def connect(cls, url: str, label: str) -> Signal:
        return cls(await websockets.connect(url, max_size=None), label)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.received.append(json.loads(raw))
                self._new.set()

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type, **fields}))

    async def expect(self, type: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first message of ``type`` not yet taken (it is taken), waiting for it."""
        async with asyncio.timeout(timeout):
            while True:
                for index, message in enumerate(self.received):
                    if message.get("type") == type:
                        return self.received.pop(index)
                if message := next((m for m in self.received if m.get("type") == "error"), None):
                    raise RuntimeError(f"{self.label}: {message}")
                self._new.clear()
                await self._new.wait()

    def saw(self, type: str) -> bool:
        return any(m.get("type") == type for m in self.received)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def _peer(role: str, tracks: dict[str, MediaStreamTrack]) -> tuple[RTCPeerConnection, dict[str, Any]]:
    """A peer laid out as the web client's (media.sections), every receiver counting, none decoding."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    sections = {}
    for section in sections_of(role):
        track = tracks.get(section.name)
        direction = section.direction if track else section.direction_without_track or section.direction
        transceiver = pc.addTransceiver(
            track if track and direction != "recvonly" else section.kind, direction=direction
        )
        internals.replace_jitter_buffer(transceiver.receiver, PacketCounter(section.kind == "video"))
        sections[section.name] = transceiver
    return pc, sections


async def _negotiate(pc: RTCPeerConnection, signal: Signal, abs_capture_time: bool = False) -> None:
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await signal.send("webrtc_offer", sdp=offer_abs_capture_time(sdp) if abs_capture_time else sdp)
    answer = (await signal.expect("webrtc_answer", timeout=30))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


class Call:
    """An agent and a customer in one call through the server."""

    def __init__(self, name: str, video: dict[str, EncodedLoop], opus: EncodedLoop, check: bool) -> None:
        self.name = name
        self.loops = video
        self.camera = LoopTrack("video")
        self.agent_mic = LoopTrack("audio", opus)
        self.customer_mic = LoopTrack("audio", opus)
        self.probe = FrameProbe(sent_at=self.camera.sent_at if check else None)
        self.check = check
        self.composite_codec = ""
        self.agent_ws: Signal | None = None
        self.customer_ws: Signal | None = None
        self.agent_pc, self.agent = _peer("agent", {"mic": self.agent_mic, "camera": self.camera})
        self.customer_pc, self.customer = _peer("customer", {"mic": self.customer_mic})
        internals.replace_jitter_buffer(self.customer["camera"].receiver, CountingBuffer(self.probe))
        self._send_like_a_browser()

    def _send_like_a_browser(self) -> None:
        # Sender reports on the capture clock (the server maps the agent's frames to capture times
        # from them) and a keyframe request answered with the loop's next keyframe.
        align_sender_reports(self.agent["camera"].sender, 90000, self.camera.capture_times)
        align_sender_reports(self.agent["mic"].sender, 48000, self.agent_mic.capture_times)
        align_sender_reports(self.customer["mic"].sender, 48000, self.customer_mic.capture_times)
        camera = weakref.ref(self.camera)

        def wrap(send_keyframe):
            def jump_to_keyframe() -> None:
                track = camera()
                if track is not None:
                    track.keyframe_wanted = True
                send_keyframe()

            return jump_to_keyframe

        internals.wrap_keyframe_request(self.agent["camera"].sender, wrap)

    async def open(self, url: str, token: str) -> dict[str, Any]:
        started = time.monotonic()
        self.agent_ws = agent = await Signal.connect(url, f"agent {self.name}")
        await agent.send("login", token=token)
        await agent.expect("logged_in")
        await agent.send("auto_answer", enabled=True)
        await agent.send("set_status", status="available")
        await agent.expect("agent_status")
        self.customer_ws = customer = await Signal.connect(url, self.name)
        await customer.send("join", name=self.name)
        await customer.expect("call_started", timeout=20)
        await agent.expect("call_started", timeout=20)
        await _negotiate(self.agent_pc, agent)
        codec = negotiated_codec(self.agent["camera"]) or "?"
        if codec not in self.loops:  # the server answered another codec: encode its loop once
            logger.warning("%s: the server answered %s; encoding a %s loop", self.name, codec, codec)
            first = next(iter(self.loops.values()))
            self.loops[codec] = await encode_video_loop(codec, first.width, first.height)
        self.camera.play(self.loops[codec])
        await _negotiate(self.customer_pc, customer, abs_capture_time=True)
        for transport in {
            id(t.receiver.transport): t.receiver.transport for t in self.customer.values()
        }.values():
            internals.read_abs_capture_time(transport, ABS_CAPTURE_TIME_ID)
        self.composite_codec = composite_codec = negotiated_codec(self.customer["camera"]) or codec
        self.probe.knows(composite_codec, self.loops[codec])
        if self.check:
            self.probe.decode_as(composite_codec)
        async with asyncio.timeout(30):
            while not self.probe.arrivals:  # noqa: ASYNC110 - filled by the receiver's packets
                await asyncio.sleep(0.05)
        return {"setup_s": round(time.monotonic() - started, 2), "codec": codec, "composite": composite_codec}

    def stats(self, t0: float, t1: float) -> dict[str, Any]:
        span = t1 - t0
        window = self.probe.window(t0, t1)
        sent = [t for t in self.camera.sent_times if t0 <= t < t1]
        stats = {
            "name": self.name,
            "frames": window["frames"],
            "fps": round(window["frames"] / span, 2),
            "forwarded": window["forwarded"],
            # By abs-capture-time; by stamp alone where the frames had none but this call decoded them.
            "latencies": [round(ms, 1) for ms in window["latencies"] or window["by_stamp"]],
            "latency_by": "abs-capture-time"
            if window["latencies"]
            else "stamp"
            if window["by_stamp"]
            else None,
            "stamped": [[round(s, 1), round(a, 1)] for s, a in window["stamped"]],
            "agent_fps": round(len(sent) / span, 2),
            "slips": self.camera.slips,
            "voice_to_customer_pps": round(_counter(self.customer["mic"]).rate(t0, t1), 1),
            "voice_to_agent_pps": round(_counter(self.agent["mic"]).rate(t0, t1), 1),
            "preview_pps": round(_counter(self.agent["camera"]).rate(t0, t1), 1),
            "ended": bool(self.customer_ws and self.customer_ws.saw("call_ended")),
            "state": self.customer_pc.connectionState,
            "agent_state": self.agent_pc.connectionState,
        }
        before = t1 - 90
        self.probe.prune(before)
        self.camera.prune(before)
        for transceiver in (self.customer["mic"], self.agent["mic"], self.agent["camera"]):
            _counter(transceiver).prune(before)
        return stats

    async def close(self) -> None:
        if self.agent_ws is not None:
            with contextlib.suppress(Exception):
                await self.agent_ws.send("end_call")
        for pc in (self.customer_pc, self.agent_pc):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5)
        for track in (self.camera, self.agent_mic, self.customer_mic):
            track.stop()
        for signal in (self.customer_ws, self.agent_ws):
            if signal is not None:
                await signal.close()


def _counter(transceiver) -> PacketCounter:
    return internals.jitter_buffer(transceiver.receiver)  # type: ignore[return-value]


async def main(video_path: str, opus_path: str) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    video = EncodedLoop.load(Path(video_path))
    loops = {video.codec: video}
    opus = EncodedLoop.load(Path(opus_path))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    calls: list[Call] = []
    try:
        while line := await reader.readline():
            command = json.loads(line)
            reply: dict[str, Any] = {"ok": True}
            try:
                if command["cmd"] == "add":
                    call = Call(command["name"], loops, opus, command.get("check", False))
                    calls.append(call)
                    reply.update(await call.open(command["url"], command["token"]))
                elif command["cmd"] == "decode":  # check calls read the stamps of their next frames
                    for call in calls:
                        if call.check:
                            call.probe.decode_as(call.composite_codec, command["frames"])
                elif command["cmd"] == "layout":  # the agents choose what their customers see
                    for call in calls:
                        if call.agent_ws is not None:
                            await call.agent_ws.send("set_layout", layout=command["layout"])
                elif command["cmd"] == "stats":
                    reply["calls"] = [c.stats(command["t0"], command["t1"]) for c in calls]
                elif command["cmd"] == "close":
                    break
            except Exception as exc:  # told to the driver, which stops the ramp with it
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
            print(json.dumps(reply), flush=True)
    finally:
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)
    print(json.dumps({"ok": True, "closed": len(calls)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
