"""A supervisor's whisper: their voice mixed into what the agent hears, never into the customer's.

The customer's voice reaches the agent as Opus packets, never decoded (media.voice). While a
supervisor whispers, the agent's share of that voice is decoded, the whisper added to it and
the sum encoded again, one packet for one packet and on the same RTP timeline, so the agent's
sender, set up at answer time, never renegotiates; when the whisper stops, the customer's
packets go through untouched again. The agent's browser has one audio section (its mic's,
which brings the customer's voice back): a mix is what it can play without renegotiating.

The whisper is mixed in for as long as the customer's voice flows (a browser sends Opus all
the time, silence included); a whisper with no customer packet to ride on is not heard.
"""

from __future__ import annotations

import time
import weakref
from collections import deque

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.voice import OPUS_RATE, QUEUE_PACKETS, VoiceRelay
from media.voice_fanout import PacketSink, VoiceFanout

WHISPER_FRESH_S = 0.2  # a whisper packet older than this is dropped, not mixed in late


class _WhisperIn(VoiceRelay):
    """The supervisor's packets, the newest :data:`QUEUE_PACKETS`, for the agent's mix to take."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.pending: deque[tuple[float, av.Packet]] = deque(maxlen=QUEUE_PACKETS)

    def _deliver(self, out: av.Packet) -> None:
        self.relayed += 1
        self.pending.append((time.monotonic(), out))

    def take(self) -> av.Packet | None:
        """The oldest whisper packet still fresh, if any."""
        now = time.monotonic()
        while self.pending:
            arrived, packet = self.pending.popleft()
            if now - arrived <= WHISPER_FRESH_S:
                return packet
        return None

    @property
    def active(self) -> bool:
        return bool(self.pending) and time.monotonic() - self.pending[-1][0] <= WHISPER_FRESH_S


class WhisperedVoice(VoiceFanout):
    """The customer's voice to the agent, with whatever a supervisor whispers mixed in.

    :meth:`output` is the agent's (whispers mixed in); :meth:`plain_output` is a listener's
    that must not hear the whisper (the supervisors themselves). :attr:`whisper` is attached
    to the supervisor's incoming audio (media.room_monitor).
    """

    def __init__(self, label: str = "voice") -> None:
        super().__init__(label)
        self.whisper = _WhisperIn(f"{label} whisper")
        self.mixed = 0  # packets the agent heard with a whisper in them

    def output(self, sender: RTCRtpSender | None = None) -> MediaStreamTrack:
        listener = self._add_listener(sender)
        mix = _WhisperMix(self, listener)
        if listener.direct is not None:
            listener.direct = _MixedDirect(listener.direct, mix)  # the whisper goes in before it leaves
        return mix

    def plain_output(self) -> MediaStreamTrack:
        return super().output()

    def close(self) -> None:
        super().close()
        self.whisper.detach()


class _WhisperMix(MediaStreamTrack):
    """The agent's voice track: the customer's packets as they came, or re-encoded with a whisper."""

    kind = "audio"

    def __init__(self, voice: WhisperedVoice, customer: MediaStreamTrack) -> None:
        super().__init__()
        self._voice = voice
        self._customer = customer
        self._decoders: tuple[OpusDecoder, OpusDecoder] | None = None
        self._encoder: OpusEncoder | None = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet: av.Packet = await self._customer.recv()  # type: ignore[assignment]
        return self.with_whisper(packet)

    def with_whisper(self, packet: av.Packet) -> av.Packet:
        """``packet`` with the next fresh whisper packet mixed in, or as it came if there is none."""
        whisper = self._voice.whisper.take()
        if whisper is None:
            return packet
        mixed = self._mix(packet, whisper)
        if mixed is None:
            return packet
        self._voice.mixed += 1
        return mixed

    def _mix(self, packet: av.Packet, whisper: av.Packet) -> av.Packet | None:
        if self._decoders is None or self._encoder is None:
            self._decoders, self._encoder = (OpusDecoder(), OpusDecoder()), OpusEncoder()
        customer_pcm = _pcm(self._decoders[0], packet)
        whisper_pcm = _pcm(self._decoders[1], whisper)
        if customer_pcm is None or whisper_pcm is None:
            return None
        size = min(customer_pcm.size, whisper_pcm.size)
        total = customer_pcm[:size].astype(np.int32) + whisper_pcm[:size].astype(np.int32)
        frame = av.AudioFrame.from_ndarray(
            np.clip(total, -32768, 32767).astype(np.int16).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = OPUS_RATE
        frame.pts = packet.pts
        frame.time_base = packet.time_base
        payloads, _ = self._encoder.encode(frame)
        if not payloads:
            return None
        out = av.Packet(payloads[0])
        out.pts = packet.pts  # the customer's packet's place on the agent's timeline
        out.time_base = packet.time_base
        return out

    def stop(self) -> None:
        super().stop()
        self._customer.stop()


class _MixedDirect:
    """The agent's packets sent directly (media.voice.DirectVoice), each mixed first."""

    def __init__(self, direct: PacketSink, mix: _WhisperMix) -> None:
        self._direct = direct
        self._mix = weakref.ref(mix)  # the mix holds the listener that holds this

    @property
    def ready(self) -> bool:
        return self._direct.ready

    def send(self, packet: av.Packet) -> bool:
        mix = self._mix()
        if mix is None or not self._direct.ready:
            return False  # the track's queue carries it, and its recv mixes it
        return self._direct.send(mix.with_whisper(packet))


def _pcm(decoder: OpusDecoder, packet: av.Packet) -> np.ndarray | None:
    """One packet's samples, interleaved stereo s16 (None: it did not decode)."""
    try:
        frames = decoder.decode(JitterFrame(data=bytes(packet), timestamp=int(packet.pts or 0)))
    except Exception:  # a corrupt packet: the agent hears the customer alone for 20 ms
        return None
    audio = [f for f in frames if isinstance(f, av.AudioFrame)]
    if not audio:
        return None
    return np.concatenate([f.to_ndarray().reshape(-1) for f in audio])
