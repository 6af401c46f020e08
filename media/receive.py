"""The receiving side of a video stream: frames completed on the marker bit, losses repaired.

- **Receive delay.** ``aiortc.jitterbuffer.JitterBuffer`` hands a video frame to the
  decoder only when the first packet of the NEXT frame arrives, although every sender
  (aiortc's own and browsers') sets the RTP marker bit on a frame's last packet. That
  costs one frame interval per receiving hop (33 ms at 30 fps, 200 ms for a 5 fps
  screen share) and holds the last frame before a pause forever.
  :class:`MarkerJitterBuffer` also completes a frame when the packets from the frame's
  first to its marker packet are all there.
- **Hand-back.** A decoded frame goes from the decoder thread into the track's queue in one
  loop callback, not through a coroutine and a Task a frame (aiortc's way), one loop pass sooner.
- **Loss.** A packet still missing after :attr:`MarkerJitterBuffer.gap_timeout_s` is given
  up, its frame dropped; the frames after it wait for a keyframe (asked for, and asked
  again while none comes) instead of going to a decoder or a viewer without their
  reference. NACKs are asked again every round trip (media.repair).

:func:`enable_low_latency_receive` puts both into a receiver (opt-in, per receiver or per
peer connection).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from media import aiortc_internals as internals
from media.encoded import is_keyframe
from media.repair import KeyframeWait, RetryingNacks

logger = logging.getLogger(__name__)


# About two seconds of a 2 Mbps stream: a retransmission asked for again after a lost one
# (a mobile link's second NACK comes 300-400 ms on) still finds its packet.
RETRANSMISSION_HISTORY = 512
internals.keep_retransmission_history(RETRANSMISSION_HISTORY)
# Every receiver's decoded frames reach its track one event-loop pass sooner (media.aiortc_internals).
internals.decode_with_direct_hand_back()


class MarkerJitterBuffer(JitterBuffer):
    """A video jitter buffer that releases a frame as soon as its marker packet completes it.

    The stock scan (release frame N when frame N+1's first packet arrives) stays as the
    fallback, for a sender that never sets the marker bit or a marker packet that was lost.
    """

    # Called with each complete frame, before it goes to the decoder (media.passthrough, media.forward).
    on_frame: Callable[[JitterFrame], None] | None = None
    # True: complete frames go to ``on_frame`` only, none to the decoder (a stream forwarded as it
    # came: the receiver's decoder is never fed, and its track never gives a frame).
    forward_only: bool = False
    # Frames handed on to the receiver's decoder.
    to_decoder: int = 0
    # Set when decoding resumes after ``forward_only``: frames reach the decoder again only from
    # one this says is a keyframe (the decoder's references are stale until then).
    decode_from: Callable[[JitterFrame], bool] | None = None
    # While ``forward_only``, frames this says are keyframes still reach the decoder (a browser
    # changes resolution on a keyframe): what draws the stream knows its current size, at the
    # cost of a keyframe's decode now and then.
    decode_keyframes: Callable[[JitterFrame], bool] | None = None
    keyframes_decoded: int = 0  # those, counted
    # A missing packet holds every later frame; after this long it is given up (its frame
    # dropped, a keyframe asked for) rather than waited for until the buffer overflows
    # (512 packets: 1.5-2.6 s of a frozen picture on a lossy link). Long enough for two or three
    # NACKs (media.repair asks again every 1.5 round trips) over a mobile link.
    gap_timeout_s: float = 0.35
    gaps_skipped: int = 0
    clock: Callable[[], float] = staticmethod(time.monotonic)
    # The codec name ("VP8", "H264") of an RTP payload type: with it, frames after a lost one wait
    # for a keyframe (without it, they go on as they come).
    codec_of: Callable[[int], str | None] | None = None
    _gap_since: float | None = None
    _newest: int | None = None  # the highest sequence number held
    _maybe_gap = False  # a packet came more than one past the newest: look for a hole
    _payload_type: int | None = None

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        self.keyframes = KeyframeWait()

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = self._add(packet)
        if pli and self._codec() is not None:
            self.keyframes.lost()  # a frame was given up: later ones lack their reference
        if frame is not None and not self.keyframes.passes(self._is_keyframe(frame)):
            frame = None
        return self.keyframes.ask(pli, self.clock()), self._hand_on(frame)

    def _codec(self) -> str | None:
        if self.codec_of is None or self._payload_type is None:
            return None
        return self.codec_of(self._payload_type)

    def _is_keyframe(self, frame: JitterFrame) -> bool:
        codec = self._codec()
        return codec is not None and is_keyframe(codec, frame.data)

    def _hand_on(self, frame: JitterFrame | None) -> JitterFrame | None:
        """``frame`` to ``on_frame``, and whether it goes on to the decoder."""
        if frame is None:
            return None
        if self.on_frame is not None:
            self.on_frame(frame)
        if self.forward_only:
            if self.decode_keyframes is None or not self.decode_keyframes(frame):
                return None
            self.keyframes_decoded += 1
        elif self.decode_from is not None:
            if not self.decode_from(frame):
                return None
            self.decode_from = None
        self.to_decoder += 1
        return frame

    def _add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """The packet into the buffer: whether a frame was given up, and a frame complete now."""
        self._payload_type = packet.payload_type
        seq = packet.sequence_number
        if self._newest is None or 0 < uint16_add(seq, -self._newest) < 0x8000:
            if self._newest is not None and uint16_add(seq, -self._newest) > 1:
                self._maybe_gap = True
            self._newest = seq
        pli, frame = super().add(packet)
        newest = self._packets[self._newest % self.capacity]  # type: ignore[operator]
        if newest is None or newest.sequence_number != self._newest:
            self._newest = seq  # released, or the buffer started again (a sequence jump back)
        # In order, nothing is scanned; after a jump, the held packets until the hole is found filled.
        if self._maybe_gap and self._held_by_gap():
            now = self.clock()
            if self._gap_since is None:
                self._gap_since = now
            elif frame is None and now - self._gap_since >= self.gap_timeout_s:
                self._skip_gap()
                self._gap_since = None  # a gap after this one starts its own wait
                pli = True
                frame = self._remove_frame(seq)
        else:
            self._gap_since = None
        return pli, frame

    def _held_by_gap(self) -> bool:
        """Whether a packet is missing before the newest one (so nothing after it can go)."""
        if self._origin is None or self._newest is None:
            return False
        span = uint16_add(self._newest, -self._origin)
        if span < self.capacity and any(
            self._packets[(self._origin + count) % self.capacity] is None for count in range(span)
        ):
            return True
        self._maybe_gap = False
        return False

    def _skip_gap(self) -> None:
        """Give up the frame the first missing packet belongs to (its timestamp is that of the
        packets either side of the gap; both, when the gap ends one frame): the decoder goes on
        from the next whole frame, and the sender is asked for a keyframe."""
        self.gaps_skipped += 1
        assert self._origin is not None and self._newest is not None
        span = uint16_add(self._newest, -self._origin)
        slots = [self._packets[(self._origin + count) % self.capacity] for count in range(span + 1)]
        first_gap = slots.index(None)
        after = next((p for p in slots[first_gap:] if p is not None), None)
        if after is None:
            return
        doomed = {after.timestamp} | ({slots[first_gap - 1].timestamp} if first_gap else set())  # type: ignore[union-attr]
        drop = first_gap
        while drop <= span and (slots[drop] is None or slots[drop].timestamp in doomed):  # type: ignore[union-attr]
            drop += 1
        self.remove(drop)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frame = self._complete_on_marker()
        if frame is not None:
            return frame
        return super()._remove_frame(sequence_number)

    def _complete_on_marker(self) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None  # a gap: wait for the missing packet (or a NACKed retransmission)
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return None  # a new frame began without a marker: leave it to the stock scan
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]
        return None


def _receivers(target: RTCRtpReceiver | RTCPeerConnection) -> Iterator[RTCRtpReceiver]:
    if isinstance(target, RTCRtpReceiver):
        yield target
    else:
        for transceiver in target.getTransceivers():
            yield transceiver.receiver


def enable_low_latency_receive(target: RTCRtpReceiver | RTCPeerConnection) -> None:
    """Complete received video frames on the RTP marker bit (saves one frame interval a hop).

    Pass a receiver, or a peer connection: then every video receiver it has now and every
    one it gets later (on its ``track`` event) is switched. Call before media flows; a
    receiver that already buffered packets keeps the stock buffer (swapping would drop them).
    """
    if isinstance(target, RTCPeerConnection) and not getattr(target, "_media_low_latency", False):
        target._media_low_latency = True  # type: ignore[attr-defined]

        @target.on("track")
        def _on_track(track) -> None:
            for transceiver in target.getTransceivers():
                if transceiver.receiver.track is track:
                    _swap_jitter_buffer(transceiver.receiver)

    for receiver in _receivers(target):
        _swap_jitter_buffer(receiver)


def _swap_jitter_buffer(receiver: RTCRtpReceiver) -> None:
    current = internals.jitter_buffer(receiver)
    if current is None or isinstance(current, MarkerJitterBuffer):
        return
    if not current._is_video:
        return  # audio keeps its prefetch
    if current._origin is not None:
        logger.warning("receiver already has packets buffered; keeping the stock jitter buffer")
        return
    buffer = MarkerJitterBuffer(capacity=current.capacity, prefetch=current._prefetch, is_video=True)
    own = weakref.ref(receiver)  # the receiver holds the buffer: not back

    def codec_of(payload_type: int) -> str | None:
        receiver = own()
        return internals.receiver_codec_name(receiver, payload_type) if receiver is not None else None

    buffer.codec_of = codec_of
    internals.replace_jitter_buffer(receiver, buffer)
    internals.route_retransmissions(receiver)
    if internals.nack_generator(receiver) is not None:
        internals.replace_nack_generator(receiver, RetryingNacks(clock=time.monotonic))
