"""Voices cross the server as they came: Opus packets forwarded, never decoded and re-encoded.

Decoding the agent's Opus, waiting in aiortc's audio jitter buffer (4 packets of prefetch,
80 ms) and encoding again put the agent's voice ~200 ms behind their mouth at the
customer against ~89 ms for a direct call (measured in Chromium). Nothing is mixed on
the server, so nothing needs decoding: :class:`VoiceRelay` takes each RTP packet from the
speaker's receiver as it arrives and hands its payload to the listener's sender, and the
listener's browser does the only jitter buffering (its NetEq adapts; ours could not).

A listener whose output is given its sender (``output(sender)``) gets each packet sent from
the speaker's receive callback itself (:class:`DirectVoice`): no queue, no wake-up of the
sender's task, no trip through aiortc's frame chain a packet; its track carries the packets
only where the sender cannot send them directly (not started yet, or another hook's loop).

A speaker may come, go and come back (a reload is a new peer, a new SSRC, a new RTP
timeline): the relay keeps the listener's timeline continuous across sources, so the
listener's sender is set up once and never renegotiates. A packet that arrives after a
newer one is dropped (a hop must not reorder), and at most :data:`QUEUE_PACKETS` wait for
a sender that fell behind: late audio is worse than lost audio, Opus conceals a loss.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import weakref
from collections.abc import Callable

import av
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.capture_clock import (
    RTP_MODULO,
    CaptureClock,
    CaptureTimes,
    follow_sender_reports,
    frame_sent_directly,
    rtp_distance,
)

logger = logging.getLogger(__name__)

OPUS_RATE = 48000
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
OPUS_FRAME = 960  # samples in the 20 ms packets browsers send
QUEUE_PACKETS = 5  # 100 ms of 20 ms packets


def answer_with_opus(transceiver: RTCRtpTransceiver) -> bool:
    """Put Opus first among the audio section's codecs; False if the offer has no Opus.

    Every WebRTC browser offers Opus (RFC 7874), and relaying needs both ends on it.
    """
    codecs = internals.codecs(transceiver)
    opus = [c for c in codecs if c.mimeType.lower() == "audio/opus"]
    if not opus:
        return False
    internals.set_codecs(transceiver, opus + [c for c in codecs if c not in opus])
    return True


class VoiceRelay:
    """One direction of a call's voice: the speaker's Opus packets to the listener's sender."""

    def __init__(self, label: str = "voice") -> None:
        self.label = label
        self.capture_times = CaptureTimes()
        self.relayed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[av.Packet] = asyncio.Queue(maxsize=QUEUE_PACKETS)
        self._undo: list[Callable[[], None]] = []
        self._clock: CaptureClock | None = None
        self._ssrc: int | None = None
        self._last_in = 0  # the speaker's last RTP timestamp, unwrapped
        self._offset = 0  # listener timeline = speaker's unwrapped timestamp + offset
        self._next_out: int | None = None  # where the listener's timeline goes on
        self._last_out_at = 0.0
        self._direct: DirectVoice | None = None

    def attach(self, receiver: RTCRtpReceiver, *, decode: bool = False) -> None:
        """Forward ``receiver``'s packets from now on (replacing any previous speaker); ``decode``:
        its decoder goes on too, for a reader of its track (the avatar's voice driver)."""
        self.detach()
        if not decode:
            internals.stop_decoding(receiver)
        self._clock = CaptureClock(OPUS_RATE)
        self._ssrc = None
        self._undo = [
            internals.tap_received_rtp(receiver, self._on_packet),
            follow_sender_reports(receiver, self._clock),
        ]

    def detach(self) -> None:
        """Stop forwarding; the listener hears nothing until the next :meth:`attach`."""
        for undo in self._undo:
            undo()
        self._undo = []

    def output(self, sender: RTCRtpSender | None = None) -> MediaStreamTrack:
        """A new outgoing track for the listener's connection (a reload makes a new one); with
        its ``sender`` (before it starts), packets go out on it as they arrive (DirectVoice)."""
        self._direct = None if sender is None else DirectVoice(sender)
        return _RelayOutput(self)

    def _on_packet(self, packet: RtpPacket) -> None:
        if not packet.payload:
            return  # padding
        if packet.ssrc != self._ssrc:
            self._start_source(packet)
        else:
            step = rtp_distance(packet.timestamp, self._last_in % RTP_MODULO)
            if step <= 0:
                self.dropped += 1  # a duplicate, or later than a newer packet already sent on
                return
            self._last_in += step
        pts = self._last_in + self._offset
        self._next_out = pts + OPUS_FRAME
        self._last_out_at = time.monotonic()
        captured = self._clock.capture_time(packet.timestamp) if self._clock is not None else None
        if captured is not None:
            self.capture_times.note(pts, captured)
        out = av.Packet(packet.payload)
        out.pts = pts
        out.time_base = OPUS_TIME_BASE
        self._deliver(out)

    def _deliver(self, out: av.Packet) -> None:
        """Send or queue one packet for the listener (a fan-out hands it to each of its listeners)."""
        if self._direct is not None and self._direct.send(out):
            self.relayed += 1
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(out)

    def _start_source(self, packet: RtpPacket) -> None:
        """A new speaker (or a new SSRC): continue the listener's timeline from where it was."""
        self._ssrc = packet.ssrc
        self._last_in = packet.timestamp
        if self._next_out is None:
            self._offset = -packet.timestamp
        else:
            silent = round((time.monotonic() - self._last_out_at) * OPUS_RATE)
            self._offset = self._next_out + silent - packet.timestamp

    async def next_packet(self) -> av.Packet:
        packet = await self._queue.get()
        self.relayed += 1
        return packet


class DirectVoice:
    """Sends a listener's packets on its sender as the speaker's packets arrive (install before
    the sender starts): one Opus packet, one RTP packet, in the caller's step."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self._direct = internals.DirectSend(sender)
        self._sender = weakref.ref(sender)  # the sender holds the track that holds this

    @property
    def ready(self) -> bool:
        return self._direct.ready

    def send(self, packet: av.Packet) -> bool:
        """Send ``packet`` (its pts on the listener's timeline, in 1/48000 s) now; False where
        the sender cannot take it directly (the track's queue then carries it)."""
        sender = self._sender()
        if sender is None or not self._direct.ready:
            return False
        timestamp = int(packet.pts or 0)
        frame_sent_directly(sender, timestamp)
        return self._direct.send([bytes(packet)], timestamp)


class _RelayOutput(MediaStreamTrack):
    """One connection's outgoing voice: the relay's packets, sent as they come."""

    kind = "audio"

    def __init__(self, relay: VoiceRelay) -> None:
        super().__init__()
        self._relay = relay

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        return await self._relay.next_packet()
