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

Both are cheap where aiortc is not: every sender runs the stamped RTP loop (one
``struct.pack`` a packet, a frame's datagrams protected and sent in one go; its sender reports
still on the capture clock), and what a peer receives is taken off the socket as plain RTP
(media.aiortc_internals.take_received_rtp) and read from the bytes (benchmarks.capacity_wire):
frames completed on the marker bit, abs-capture-time read from each frame's first packet,
packets counted. As a browser, each peer offers transport-cc and numbers every packet it sends
(benchmarks.capacity_offer), so the server does for it the work a browser's call gives it. The
clients' receivers then send no receiver reports and no REMB of their own
(no NACK, no PLI: loopback loses nothing): each customer tells the server once a second that
its link takes :data:`CLEAN_LINK_BPS`, as a browser on a clean link would.
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
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.capacity_media import (
    ABS_CAPTURE_TIME_ID,
    EncodedLoop,
    FrameProbe,
    LoopTrack,
    encode_video_loop,
    offer_abs_capture_time,
)
from benchmarks.capacity_offer import TRANSPORT_CC_ID, offer_transport_cc
from benchmarks.capacity_wire import FrameAssembler, PacketTally, WireReceiver
from media import aiortc_internals as internals
from media.capture_clock import align_sender_reports
from media.peers import negotiated_codec
from media.sections import sections_of

logger = logging.getLogger("benchmarks.capacity_clients")
CLEAN_LINK_BPS = 5_000_000  # what each customer's REMB says its link takes (the server caps at its own max)
REMB_EVERY_S = 1.0


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
    """A peer laid out as the web client's (media.sections), its senders on the stamped RTP loop."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    numbering = internals.TransportSequence(TRANSPORT_CC_ID)  # one counter a transport, as a browser's
    sections = {}
    for section in sections_of(role):
        track = tracks.get(section.name)
        direction = section.direction if track else section.direction_without_track or section.direction
        transceiver = pc.addTransceiver(
            track if track and direction != "recvonly" else section.kind, direction=direction
        )
        internals.send_stamped_payloads(transceiver.sender, numbering)
        sections[section.name] = transceiver
    internals.read_datagrams_whole_and_cheaply(pc)  # as the server's peers: not 256 KiB a datagram
    return pc, sections


async def _negotiate(
    pc: RTCPeerConnection,
    signal: Signal,
    receiving: WireReceiver,
    voice: RTCRtpTransceiver,
    abs_capture_time: bool = False,
) -> None:
    """Offer, take the answer, and from then on hand what the peer receives to ``receiving``
    (``voice``: the section whose payload types are the voice's)."""
    await pc.setLocalDescription(await pc.createOffer())
    sdp = offer_transport_cc(pc.localDescription.sdp)  # as a browser offers: the server answers it
    await signal.send("webrtc_offer", sdp=offer_abs_capture_time(sdp) if abs_capture_time else sdp)
    answer = (await signal.expect("webrtc_answer", timeout=30))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    # In the same turn: the transport connects (and media flows) only after this returns.
    receiving.audio_types = frozenset(c.payloadType for c in internals.codecs(voice))
    internals.take_received_rtp(voice.receiver.transport, receiving)


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
        self.composite = FrameAssembler(self.probe.on_wire_frame, ABS_CAPTURE_TIME_ID)
        self.voice_to_customer, self.voice_to_agent = PacketTally(), PacketTally()
        self.preview = PacketTally()
        self.customer_receives = WireReceiver(self.composite, self.voice_to_customer, ())
        self.agent_receives = WireReceiver(self.preview, self.voice_to_agent, ())
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
        await _negotiate(self.agent_pc, agent, self.agent_receives, self.agent["mic"])
        codec = negotiated_codec(self.agent["camera"]) or "?"
        if codec not in self.loops:  # the server answered another codec: encode its loop once
            logger.warning("%s: the server answered %s; encoding a %s loop", self.name, codec, codec)
            first = next(iter(self.loops.values()))
            self.loops[codec] = await encode_video_loop(codec, first.width, first.height)
        self.camera.play(self.loops[codec])
        await _negotiate(
            self.customer_pc, customer, self.customer_receives, self.customer["mic"], abs_capture_time=True
        )
        self.composite_codec = composite_codec = negotiated_codec(self.customer["camera"]) or codec
        self.composite.codec = composite_codec  # in the answer's turn: before its first packet
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
            "voice_to_customer_pps": round(self.voice_to_customer.rate(t0, t1), 1),
            "voice_to_agent_pps": round(self.voice_to_agent.rate(t0, t1), 1),
            "preview_pps": round(self.preview.rate(t0, t1), 1),
            "incomplete_frames": self.composite.incomplete,
            "ended": bool(self.customer_ws and self.customer_ws.saw("call_ended")),
            "state": self.customer_pc.connectionState,
            "agent_state": self.agent_pc.connectionState,
        }
        before = t1 - 90
        self.probe.prune(before)
        self.camera.prune(before)
        for tally in (self.voice_to_customer, self.voice_to_agent, self.preview):
            tally.prune(before)
        return stats

    async def tell_link(self) -> None:
        """The customer's REMB for the composite: a clean link (a browser's receiver says so)."""
        if self.composite.ssrc is not None and self.customer_pc.connectionState == "connected":
            await internals.send_remb(self.customer["camera"].receiver, CLEAN_LINK_BPS, [self.composite.ssrc])

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


async def _tell_links(calls: list[Call]) -> None:
    """Every customer's REMB, once a second, for as long as the process runs."""
    while True:
        await asyncio.sleep(REMB_EVERY_S)
        for call in list(calls):
            with contextlib.suppress(Exception):  # a call closing meanwhile
                await call.tell_link()


async def main(video_path: str, opus_path: str) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    video = EncodedLoop.load(Path(video_path))
    loops = {video.codec: video}
    opus = EncodedLoop.load(Path(opus_path))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    calls: list[Call] = []
    links = loop.create_task(_tell_links(calls), name="customers' REMB")
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
        links.cancel()
        await asyncio.gather(links, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)
    print(json.dumps({"ok": True, "closed": len(calls)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
