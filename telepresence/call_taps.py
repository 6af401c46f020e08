"""Supervisors on live calls: one tap per watched call, shared by every supervisor watching it.

A supervisor's WHEP peer lives here, in the control process; the call's room may live in a
media worker. Each watched call gets ONE loopback peer to its room (the room answers it as a
monitor: media.room_monitor), whatever the number of supervisors: its video is the customer's
picture, already encoded by the room's program for the customer, forwarded to each supervisor
as it came (media.encoded_fanout: never decoded here, no encode per supervisor); its two
voices are forwarded likewise (media.voice_fanout); a supervisor's whisper goes back on it
to the room, which mixes it into what the agent hears only (media.whisper).

The agent is told (the documented indicator, docs/protocol.md): ``supervisor`` with
``watching`` (how many supervisors watch the call) and ``whispering`` (whether a whisper is
heard now). The customer is told nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.answer import MediaError, close_peer
from media.encoded_fanout import EncodedFanout
from media.peers import negotiated_codec
from media.receive import enable_low_latency_receive
from media.voice import VoiceRelay
from media.voice_fanout import VoiceFanout
from telepresence.calls import Call
from telepresence.room_handle import RoomHandle

logger = logging.getLogger(__name__)

SendAgent = Callable[[str, dict[str, Any]], None]
WHISPER_QUIET_S = 0.5  # no whisper packet for this long: the supervisor stopped talking
WHISPER_CHECK_S = 0.25
RELEASE_MONITOR_S = 5.0  # the room's side of a closing tap; what is ours is closed already


class _Whisper(VoiceRelay):
    """The supervisors' whispers to the room: every watcher's page offers to send one, and the
    one whose microphone is on is heard; while one whispers, the others wait until it has
    been quiet for :data:`WHISPER_QUIET_S`. Notes when the last packet came."""

    heard_at = 0.0

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.speaker: RTCRtpReceiver | None = None  # the supervisor heard now (or last)
        self._speakers: dict[RTCRtpReceiver, Callable[[], None]] = {}

    def add_speaker(self, receiver: RTCRtpReceiver) -> None:
        """A supervisor who may whisper (their page sends only while "Whisper" is held)."""
        internals.stop_decoding(receiver)
        self._speakers[receiver] = internals.tap_received_rtp(
            receiver, lambda packet: self._heard(receiver, packet)
        )

    def remove_speaker(self, receiver: RTCRtpReceiver) -> None:
        undo = self._speakers.pop(receiver, None)
        if undo is not None:
            undo()
        if self.speaker is receiver:
            self.speaker, self.heard_at = None, 0.0

    def _heard(self, receiver: RTCRtpReceiver, packet: RtpPacket) -> None:
        if receiver is not self.speaker:
            if self.speaker is not None and time.monotonic() - self.heard_at < WHISPER_QUIET_S:
                return  # another supervisor is whispering
            self.speaker = receiver
        self._on_packet(packet)

    def _deliver(self, out: av.Packet) -> None:
        self.heard_at = time.monotonic()
        super()._deliver(out)

    def detach(self) -> None:
        super().detach()
        for receiver in list(self._speakers):
            self.remove_speaker(receiver)


class CallTap:
    """One watched call: its room's monitor peer and what the supervisors share of it."""

    def __init__(self, call: Call, room: RoomHandle, send_agent: SendAgent) -> None:
        self.call = call
        self.room = room
        self.watchers: set[object] = set()  # the supervisors' sessions
        self.video: EncodedFanout | None = None
        self.agent_voice = VoiceFanout(f"{call.id} agent voice to supervisors")
        self.customer_voice = VoiceFanout(f"{call.id} customer voice to supervisors")
        self.whisper = _Whisper(f"{call.id} whisper")
        self.closed = False
        self._send_agent = send_agent
        self._pc: RTCPeerConnection | None = None
        self._answer: str | None = None  # the room's answer: which monitor is ours, to release
        self._told: tuple[int, bool] | None = None
        self._watching_whisper: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """False once the tap's peer to the room failed or closed (its media stopped)."""
        return self._pc is not None and self._pc.connectionState not in ("failed", "closed")

    @property
    def codec(self) -> str:
        return self.video.codec if self.video is not None else ""

    async def open(self) -> None:
        """The room answers this tap's monitor offer. Raises MediaError (the tap is then closed)."""
        # Loopback: host candidates. MAX_BUNDLE: under aiortc's default the second audio section
        # is bundled on the first one's transport and its packets all reach the first receiver.
        pc = self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        try:
            picture = pc.addTransceiver("video", direction="recvonly")
            enable_low_latency_receive(picture.receiver)  # frames complete on the marker, for the fan-out
            voices = [pc.addTransceiver("audio", direction="recvonly") for _ in range(2)]
            pc.addTransceiver(self.whisper.output(), direction="sendonly")
            internals.guard_received_datagrams(pc)  # its port is open to anyone from gathering on
            await pc.setLocalDescription(await pc.createOffer())
            answer = self._answer = await self.room.answer_monitor(pc.localDescription.sdp)
            if self.closed:
                raise MediaError("gone", "the call ended while its room answered")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            self.video = EncodedFanout(
                picture.receiver, negotiated_codec(picture) or "", label=f"{self.call.id} tap"
            )
            self.agent_voice.attach(voices[0].receiver)
            self.customer_voice.attach(voices[1].receiver)
        except BaseException:
            await self.close()
            raise
        self._watching_whisper = asyncio.get_running_loop().create_task(
            self._tell_whispering(), name=f"{self.call.id} whisper indicator"
        )
        logger.info("%s: supervisors' tap open", self.call.id)

    # ------------------------------------------------------------ indicator

    def tell_agent(self) -> None:
        """The agent's console is told who listens, when that changed (the documented indicator)."""
        now = (len(self.watchers), self.whispering)
        if now != self._told and not (self._told is None and now[0] == 0):
            self._told = now
            self._send_agent(self.call.agent_id, self.indicator())

    def indicator(self) -> dict:
        """The indicator message as last told (for a console that opens meanwhile)."""
        watching, whispering = self._told or (0, False)
        return {"type": "supervisor", "call_id": self.call.id, "watching": watching, "whispering": whispering}

    @property
    def whispering(self) -> bool:
        return self.whisper.speaker is not None and time.monotonic() - self.whisper.heard_at < WHISPER_QUIET_S

    async def _tell_whispering(self) -> None:
        while True:
            await asyncio.sleep(WHISPER_CHECK_S)
            self.tell_agent()

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """The monitor goes from the room; every supervisor's track of it ends. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._watching_whisper is not None:
            self._watching_whisper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching_whisper
        self.watchers.clear()
        self.whisper.detach()  # no speaker: not whispering
        self.tell_agent()  # nobody watches any more
        # Ours first: whatever becomes of the room's side, nothing of the tap stays open here.
        if self.video is not None:
            await self.video.close()
        self.agent_voice.close()
        self.customer_voice.close()
        if self._pc is not None:
            for transceiver in self._pc.getTransceivers():
                if transceiver.sender.track is not None:
                    transceiver.sender.track.stop()
            await close_peer(self._pc)
        if self.call.active and self._answer is not None:
            try:
                async with asyncio.timeout(RELEASE_MONITOR_S):
                    await self.room.release_monitor(self._answer)  # ours only: a newer tap's stays
            except MediaError as exc:  # the call is ending, or its worker went
                logger.info("%s: releasing the monitor: %s", self.call.id, exc.message)
            except TimeoutError:
                logger.warning(
                    "%s: the room did not release the monitor in %g s", self.call.id, RELEASE_MONITOR_S
                )
        logger.info("%s: supervisors' tap closed", self.call.id)


class CallTaps:
    """The taps of every watched call, opened by the first supervisor, closed after the last."""

    def __init__(self, send_agent: SendAgent) -> None:
        self.taps: dict[str, CallTap] = {}
        self._send_agent = send_agent
        self._opening: dict[str, asyncio.Lock] = {}

    def indicators(self, agent: str) -> list[dict]:
        """What ``agent``'s console was last told of each of their watched calls."""
        return [
            tap.indicator()
            for tap in self.taps.values()
            if tap.call.agent_id == agent and not tap.closed and tap.indicator()["watching"]
        ]

    async def join(self, call: Call, watcher: object) -> CallTap:
        """``call``'s tap (opened if need be) with ``watcher`` counted. Raises MediaError."""
        assert call.room is not None
        lock = self._opening.setdefault(call.id, asyncio.Lock())
        async with lock:
            tap = self.taps.get(call.id)
            if tap is None or tap.closed or tap.room is not call.room or not tap.connected:
                if tap is not None:
                    await tap.close()
                tap = CallTap(call, call.room, self._send_agent)
                self.taps[call.id] = tap
                try:
                    await tap.open()
                except BaseException:
                    self.taps.pop(call.id, None)
                    self._opening.pop(call.id, None)
                    raise
            tap.watchers.add(watcher)
            tap.tell_agent()
            return tap

    async def leave(self, tap: CallTap, watcher: object) -> None:
        """``watcher`` stops watching; the tap closes after its last watcher."""
        tap.watchers.discard(watcher)
        if tap.watchers:
            tap.tell_agent()
            return
        # Under the call's lock: a tap opening meanwhile waits until this one has gone.
        async with self._opening.setdefault(tap.call.id, asyncio.Lock()):
            if self.taps.get(tap.call.id) is tap:
                del self.taps[tap.call.id]
            await tap.close()
        if tap.call.id not in self.taps:
            self._opening.pop(tap.call.id, None)

    def watching(self, call_id: str) -> int:
        tap = self.taps.get(call_id)
        return 0 if tap is None or tap.closed else len(tap.watchers)

    async def close(self) -> None:
        for tap in list(self.taps.values()):
            await tap.close()
        self.taps.clear()
