"""When each RTP packet reached the machine: the kernel's receive time of its UDP datagram.

Transport-cc feedback reports arrival times, and GoogCC reads arrivals spreading out against
the send times as a queue building up on the path, and backs off. Stamped when Python gets to
a packet (past aioice's queue, DTLS, SRTP and the router), a busy or starved process makes its
own scheduling look like network queueing: measured in Chromium with a CPU hog beside the
server, the agent's estimate fell from 3.6 Mbps to 0.1 Mbps and its camera to 1 fps, while a
direct call under the same hog held. libwebrtc stamps packets with the kernel's receive time
(SO_TIMESTAMP); so does this, with SIOCGSTAMPNS right after each datagram is read, which works
under asyncio's and uvloop's UDP transports alike (neither passes recvmsg's ancillary data on).

SRTP leaves the RTP header and its extensions in the clear, so the transport-wide sequence
number is read from the datagram as it arrives; the feedback takes the stamp once SRTP has
authenticated the packet (:meth:`ArrivalStamps.take`). Relayed (TURN) datagrams are not
stamped here: their feedback keeps the time Python saw them.
"""

from __future__ import annotations

import fcntl
import struct
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCDtlsTransport

from media.aiortc_internals._names import _wrap_method
from media.aiortc_internals._transports import _unpack_extensions

SIOCGSTAMPNS = 0x8907  # linux/sockios.h: the last received datagram's timestamp, a timespec
_TIMESPEC = struct.Struct("qq")
_NO_TIMESPEC = bytes(_TIMESPEC.size)
MAX_PENDING = 1024  # stamps never taken (a datagram SRTP refused) are dropped past this, oldest first


def transport_sequence_number(data: bytes, extension_id: int) -> int | None:
    """The transport-wide sequence number in an RTP datagram's header, or None (RTCP, DTLS,
    STUN, a packet without it, or too short to tell)."""
    if len(data) < 12 or data[0] >> 6 != 2 or not data[0] & 0x10 or 192 <= data[1] <= 223:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    if len(data) < start + 4:
        return None
    profile, words = struct.unpack_from("!HH", data, start)
    block = data[start + 4 : start + 4 + 4 * words]
    try:  # not yet authenticated (SRTP comes later): anyone may have sent it
        elements = _unpack_extensions(profile, block)
    except IndexError:  # an element longer than the block
        return None
    for ident, value in elements:
        if ident == extension_id and len(value) >= 2:
            return (value[0] << 8) | value[1]
    return None


def _kernel_age_ms(fd: int) -> float | None:
    """How long ago the kernel received the socket's last datagram; None where it cannot say."""
    try:
        seconds, nanoseconds = _TIMESPEC.unpack(fcntl.ioctl(fd, SIOCGSTAMPNS, _NO_TIMESPEC))
    except OSError:
        return None
    age_ns = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
    return max(age_ns, 0) / 1e6


class ArrivalStamps:
    """Kernel receive times (``time.monotonic()`` ms) by 16-bit transport-wide sequence number,
    each kept until taken."""

    def __init__(self, extension_id: int) -> None:
        self.extension_id = extension_id
        self.stamped = 0
        self._pending: dict[int, float] = {}

    def stamp(self, data: bytes, fd: int) -> None:
        sequence = transport_sequence_number(data, self.extension_id)
        if sequence is None:
            return
        age_ms = _kernel_age_ms(fd)
        if age_ms is None:
            return
        if len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]  # the oldest
        self._pending[sequence] = time.monotonic() * 1000 - age_ms
        self.stamped += 1

    def take(self, sequence: int) -> float | None:
        return self._pending.pop(sequence, None)


def stamp_arrivals(transport: RTCDtlsTransport, stamps: ArrivalStamps) -> Callable[[], None]:
    """Stamp every datagram the transport's ICE connection reads on its own UDP sockets (host and
    server-reflexive candidates); returns the undo. Call once gathering is done."""
    connection = transport.transport.iceGatherer._connection  # type: ignore[attr-defined]
    # A host candidate's socket is also its server-reflexive one's; a relayed candidate's
    # datagrams come inside TURN messages, from the TURN server's socket.
    protocols = [p for p in connection._protocols if p.local_candidate.type == "host"]
    for protocol in protocols:
        fd = protocol.transport.get_extra_info("socket").fileno()
        _kernel_age_ms(fd)  # the first ask turns the socket's timestamps on, for what comes next

        def wrap(received: Callable[..., Any], fd: int = fd) -> Callable[..., Any]:
            def stamped(data: bytes, addr: Any) -> Any:
                stamps.stamp(data, fd)
                return received(data, addr)

            return stamped

        _wrap_method(protocol, "datagram_received", wrap)

    def undo() -> None:
        for protocol in protocols:
            protocol.__dict__.pop("datagram_received", None)

    return undo
