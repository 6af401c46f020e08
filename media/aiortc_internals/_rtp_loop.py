"""A sender's RTP loop that stamps headers on payloads, without an object a packet.

aiortc's loop (``RTCRtpSender._run_rtp``) builds an ``RtpPacket`` a payload, sets its header
extensions one by one, reads the clock twice and serialises it through the extension map:
per packet Python that, with the packetising before it, was most of what a WHEP viewer of
the host cost the server (benchmarks/README.md, fanout). This loop packs the extension block
once a frame (abs-send-time is the frame's send time; mid never changes), stamps sequence
number, marker, timestamp and SSRC with one ``struct.pack`` a packet, and keeps the datagram
itself as the retransmission history, parsed back into a packet only when a NACK asks for it;
a frame's datagrams are protected and sent in one synchronous go (:func:`send_now`) where the
ICE pair is a plain UDP socket. The rest stays aiortc's: the (wrapped) ``_next_encoded_frame``
chain, RTX, the RTCP sender reports (fed the same counters), ``stop()``.

A sender whose packets something watches (``watch_sent_rtp``: media.capture_clock learns the
sender's timestamp origin and puts abs-capture-time on each frame's first packet) runs this loop
too: the watcher is handed each packet as aiortc's loop would hand it (an ``RtpPacket`` with mid
and abs-send-time, before it is serialised), and a packet to which it added an extension gets a
block of its own, packed by the sender's map; the rest keep the frame's block. Any other hook
(another history, another map) keeps aiortc's loop: hooks are installed before the sender
starts, which is when this loop chooses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from struct import pack, unpack_from
from typing import Any, cast

import aiortc.rtcrtpsender
from aioice.ice import StunProtocol
from aiortc import RTCDtlsTransport, RTCRtpSender, clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from media.aiortc_internals._names import _wrap_method
from media.aiortc_internals._senders import _WatchedHistory
from media.aiortc_internals._transport_wide import TransportSequence, packed_with_element, with_element
from media.aiortc_internals._transports import _ExtensionsMap, _unpack_extensions

logger = logging.getLogger(__name__)

ABS_SEND_TIME_MASK = 0xFFFFFF  # 6.18 fixed-point seconds: NTP time >> 14, 24 bits
HEADER = "!BBHLL"  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC (no CSRC: none is sent)


class RtpStamper:
    """One stream's RTP datagrams (before SRTP) from a frame's payloads. Pure: what aiortc's
    ``RtpPacket.serialize`` makes of the same packet, byte for byte (tests/media/test_rtp_loop.py).

    Args:
        payload_type, ssrc: the stream's.
        extensions: the sender's negotiated header-extension map; mid: its section's mid.
        transport_sequence: where each packet takes its transport-wide sequence number from, if
            it carries one (a browser's does where transport-cc was negotiated; aiortc's never).
    """

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        extensions: HeaderExtensionsMap,
        mid: str | None,
        transport_sequence: TransportSequence | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.transport_sequence = transport_sequence

        def block_of(abs_send_time: int, transport_wide: bytes) -> tuple[int, bytes]:
            profile, block = extensions.set(HeaderExtensions(mid=mid, abs_send_time=abs_send_time))
            if transport_sequence is None:
                return profile, block
            return with_element(profile, block, transport_sequence.extension_id, transport_wide)

        profile, block = block_of(0, b"\0\0")
        # Where abs-send-time's 3 bytes and the transport-wide number's 2 sit (None: not sent).
        self._abs_send_time_at = _changed_at(block, block_of(ABS_SEND_TIME_MASK, b"\0\0")[1])
        self._sequence_at = _changed_at(block, block_of(0, b"\xff\xff")[1])
        self._extension = bytearray(pack("!HH", profile, len(block) // 4) + block) if block else None
        self._first_byte = 0x90 if block else 0x80  # version 2, the X bit where there are extensions

    def datagrams(
        self,
        payloads: list[bytes],
        sequence: int,
        timestamp: int,
        ntp: int,
        own_blocks: dict[int, bytes] | None = None,
    ) -> list[bytes]:
        """``payloads`` as datagrams numbered from ``sequence``, the last marked (a frame's end);
        ``ntp``: the send time (64-bit NTP), for abs-send-time. ``own_blocks``: payload index ->
        that packet's packed extension header (profile, length, block), where it is not the frame's."""
        extension = b""
        if self._extension is not None:
            at = self._abs_send_time_at
            if at is not None:
                self._extension[at : at + 3] = ((ntp >> 14) & ABS_SEND_TIME_MASK).to_bytes(3, "big")
            extension = bytes(self._extension)
        first, last, ssrc = self._first_byte, len(payloads) - 1, self.ssrc
        plain, marked = self.payload_type, self.payload_type | 0x80  # the marker bit: the frame's end
        if self.transport_sequence is not None and self._sequence_at is not None:
            return self._numbered(payloads, sequence, timestamp, own_blocks or {})
        datagrams = [
            pack(HEADER, first, marked if i == last else plain, (sequence + i) & 0xFFFF, timestamp, ssrc)
            + extension
            + payload
            for i, payload in enumerate(payloads)
        ]
        for i, block in (own_blocks or {}).items():
            header = 0x90 if block else 0x80
            datagrams[i] = (
                pack(HEADER, header, marked if i == last else plain, (sequence + i) & 0xFFFF, timestamp, ssrc)
                + block
                + payloads[i]
            )
        return datagrams

    def _numbered(
        self, payloads: list[bytes], sequence: int, timestamp: int, own_blocks: dict[int, bytes]
    ) -> list[bytes]:
        """:meth:`datagrams` for a stream that numbers each packet transport-wide too."""
        assert self.transport_sequence is not None and self._extension is not None
        ident, number = self.transport_sequence.extension_id, self.transport_sequence.take(len(payloads))
        extension, at, last, out = self._extension, cast(int, self._sequence_at), len(payloads) - 1, []
        for i, payload in enumerate(payloads):
            wide = ((number + i) & 0xFFFF).to_bytes(2, "big")
            if i in own_blocks:
                block = packed_with_element(own_blocks[i], ident, wide)
            else:
                extension[at : at + 2] = wide
                block = bytes(extension)
            marker = self.payload_type | (0x80 if i == last else 0)
            header = pack(HEADER, 0x90, marker, (sequence + i) & 0xFFFF, timestamp, self.ssrc)  # X bit set
            out.append(header + block + payload)
        return out


def _changed_at(block: bytes, changed: bytes) -> int | None:
    """The offset, in a packet's extension header, of the first byte where two blocks differ."""
    at = next((i for i, (a, b) in enumerate(zip(block, changed, strict=True)) if a != b), None)
    return None if at is None else 4 + at


def packed_extensions(extensions: HeaderExtensionsMap, values: HeaderExtensions) -> bytes:
    """A packet's extension header (profile, length in words, block) as ``RtpPacket.serialize``
    packs it; empty when there is nothing to carry."""
    profile, block = extensions.set(values)
    return pack("!HH", profile, len(block) >> 2) + block if block else b""


class _SentDatagrams(dict):
    """A sender's retransmission history of datagrams as sent: aiortc's ``_retransmit`` asks it
    with ``get`` for a packet, which is parsed back only then (a NACK is rare; a packet is not)."""

    def __init__(self, extensions: HeaderExtensionsMap) -> None:
        super().__init__()
        self.extensions = extensions

    def get(self, key: int, default: Any = None) -> Any:
        data = super().get(key)
        if data is None:
            return default
        packet = RtpPacket.parse(data, self.extensions)
        ident = getattr(self.extensions, "abs_capture_time_id", None)
        if ident is not None:
            # aiortc's map does not read abs-capture-time back: a retransmission keeps it.
            profile, block = _extension_block(data)
            for x_id, value in _unpack_extensions(profile, block):
                if x_id == ident and len(value) >= 8:
                    packet.extensions.abs_capture_time = int.from_bytes(value[:8], "big")  # type: ignore[attr-defined]
        return packet


def _extension_block(datagram: bytes) -> tuple[int, bytes]:
    """(profile, block) of an RTP datagram's header extension (no CSRC: none is sent)."""
    if not datagram[0] & 0x10:
        return 0, b""
    profile, words = unpack_from("!HH", datagram, 12)
    return profile, datagram[16 : 16 + 4 * words]


def send_now(dtls: RTCDtlsTransport, datagrams: list[bytes]) -> bool:
    """Protect (SRTP) and send ``datagrams`` on the nominated pair's UDP socket at once, in one
    go; False, sending nothing, where that pair is not a plain UDP socket (a TURN relay wraps
    what it sends): then aiortc's ``_send_rtp`` must send them. Raises ConnectionError when the
    transport is not connected, as ``_send_rtp`` does.

    aiortc's path awaits five coroutines a packet (DTLS transport, ICE transport, aioice's
    connection twice, its protocol) before the same ``sendto``.
    """
    if dtls._state != DtlsState.CONNECTED:  # type: ignore[attr-defined]
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    pair = dtls.transport._connection._nominated.get(1)  # type: ignore[attr-defined]
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    if type(pair.protocol).send_data is not StunProtocol.send_data or pair.local_candidate.type == "relay":
        return False  # a relayed pair's protocol is a StunProtocol too, over a TurnTransport
    protect, sendto, address = dtls._tx_srtp.protect, pair.protocol.transport.sendto, pair.remote_addr  # type: ignore[attr-defined]
    sent = 0
    for datagram in datagrams:
        data = protect(datagram)
        sendto(data, address)
        sent += len(data)
    dtls._RTCDtlsTransport__tx_bytes += sent  # type: ignore[attr-defined]  # its transport stats
    dtls._RTCDtlsTransport__tx_packets += len(datagrams)  # type: ignore[attr-defined]
    return True


def send_stamped_payloads(
    sender: RTCRtpSender, transport_sequence: TransportSequence | None = None
) -> None:
    """Run ``sender``'s RTP with :class:`RtpStamper` instead of aiortc's loop, from when it starts
    (call before; a sender whose history or extension map another hook replaced keeps aiortc's
    loop; one watched with ``watch_sent_rtp`` or carrying abs-capture-time runs this one).
    ``transport_sequence``: number each packet transport-wide from it, as a browser does."""
    own = weakref.ref(sender)
    sender._transport_sequence = transport_sequence  # type: ignore[attr-defined]  # StampedStream's

    def wrap(stock_loop):
        def run_rtp(codec: RTCRtpCodecParameters):
            return _run_rtp(own(), codec, stock_loop)

        return run_rtp

    _wrap_method(sender, "_run_rtp", wrap)


def runs_stamped(sender: RTCRtpSender) -> bool:
    """Whether ``sender``'s RTP runs this module's loop (it has started and chose it)."""
    return isinstance(sender._RTCRtpSender__rtp_history, _SentDatagrams)  # type: ignore[attr-defined]


def stamps(sender: Any) -> bool:
    """Whether ``sender`` can run this module's loop: its history and extension map are aiortc's
    own or the watched ones (any other hook keeps aiortc's loop)."""
    extensions = sender._RTCRtpSender__rtp_header_extensions_map
    history = sender._RTCRtpSender__rtp_history
    plain_map = type(extensions) in (HeaderExtensionsMap, _ExtensionsMap)
    return type(history) in (dict, _WatchedHistory) and plain_map


class StampedStream:
    """One started sender's stream: numbers, stamps, keeps and sends its frames' packets, and
    counts them for its sender reports (what aiortc's loop does a frame, without a task hop)."""

    def __init__(self, sender: Any, codec: RTCRtpCodecParameters) -> None:
        self.sender = sender
        self.extensions = sender._RTCRtpSender__rtp_header_extensions_map
        stock = sender._RTCRtpSender__rtp_history
        self.watch = stock.watch if isinstance(stock, _WatchedHistory) else None
        self.mid = sender._RTCRtpSender__mid
        payload_type = cast(int, codec.payloadType)  # set by the time a sender runs
        numbering = getattr(sender, "_transport_sequence", None)  # send_stamped_payloads'
        self.stamper = RtpStamper(payload_type, sender._ssrc, self.extensions, self.mid, numbering)
        self.history = sender._RTCRtpSender__rtp_history = _SentDatagrams(self.extensions)
        self.sequence = aiortc.rtcrtpsender.random_sequence_number()
        self.origin = random.getrandbits(32)

    def send(self, frame: Any) -> list[bytes]:
        """Send ``frame`` (aiortc's encoded frame: payloads, timestamp, audio level); the datagrams
        left for aiortc's own path to send (a TURN relay's pair), in order, else none. Raises
        ConnectionError when the transport is not connected, as aiortc's send does."""
        sender = self.sender
        timestamp = (self.origin + frame.timestamp) & 0xFFFFFFFF
        ntp = clock.current_ntp_time()
        size = aiortc.rtcrtpsender.RTP_HISTORY_SIZE  # read at each use (keep_retransmission_history)
        own_blocks = None
        if self.watch is not None or frame.audio_level is not None:
            own_blocks = _show_packets(
                self.watch, self.stamper, self.extensions, self.mid, frame, self.sequence, timestamp, ntp
            )
        datagrams = self.stamper.datagrams(frame.payloads, self.sequence, timestamp, ntp, own_blocks)
        history, sequence = self.history, self.sequence
        for datagram in datagrams:
            history[sequence % size] = datagram
            sequence = (sequence + 1) & 0xFFFF
        self.sequence = sequence
        left = [] if send_now(sender.transport, datagrams) else datagrams
        # What the sender reports (RTCP SR) pairs the last packet's timestamp with its send time.
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__octet_count += sum(map(len, frame.payloads))
        sender._RTCRtpSender__packet_count += len(frame.payloads)
        return left


async def _run_rtp(sender: Any, codec: RTCRtpCodecParameters, stock_loop: Any) -> None:
    if not stamps(sender):
        await stock_loop(codec)  # hooked some other way: aiortc's packets as they are
        return
    sender._RTCRtpSender__rtp_started.set()
    try:  # everything after started is set: stop() waits for exited, set at the end whatever happens
        stream = StampedStream(sender, codec)
        while True:
            if not sender.track:
                await asyncio.sleep(0.02)  # as aiortc's loop: no track yet (replaceTrack)
                continue
            frame = await sender._next_encoded_frame(codec)
            if frame is None:
                continue
            for datagram in stream.send(frame):
                await sender.transport._send_rtp(datagram)  # aiortc's path (a TURN relay's, say)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        # As aiortc's loop: whatever happened, stop() must not wait for the exit forever.
        logger.exception("RTP loop of sender %s failed", sender._ssrc)
    finish(sender)


def finish(sender: Any) -> None:
    """What aiortc's loop does as it ends: the track stopped, the sender's exit set."""
    track = sender.track
    if track:
        track.stop()
        sender._RTCRtpSender__track = None
    sender._RTCRtpSender__encoder = None
    sender._RTCRtpSender__rtp_exited.set()


def _show_packets(
    watch: Any,
    stamper: RtpStamper,
    extensions: HeaderExtensionsMap,
    mid: str | None,
    frame: Any,
    sequence: int,
    timestamp: int,
    ntp: int,
) -> dict[int, bytes]:
    """Hand ``watch`` each of the frame's packets as aiortc's loop builds it (it may add header
    extensions); the packed extension header of each packet that now carries more than mid and
    abs-send-time (abs-capture-time, an audio level), by payload index."""
    own: dict[int, bytes] = {}
    last = len(frame.payloads) - 1
    for i, payload in enumerate(frame.payloads):
        packet = RtpPacket(
            payload_type=stamper.payload_type,
            marker=int(i == last),
            sequence_number=(sequence + i) & 0xFFFF,
            timestamp=timestamp,
            ssrc=stamper.ssrc,
            payload=payload,
        )
        values = packet.extensions
        values.abs_send_time = (ntp >> 14) & ABS_SEND_TIME_MASK
        values.mid = mid
        if frame.audio_level is not None:
            values.audio_level = (False, -frame.audio_level)
        if watch is not None:
            watch(packet)
        if values.audio_level is not None or getattr(values, "abs_capture_time", None) is not None:
            own[i] = packed_extensions(extensions, values)
    return own
