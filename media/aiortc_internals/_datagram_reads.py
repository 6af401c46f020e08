"""A peer's UDP sockets read into a buffer the size of the largest datagram, not asyncio's 256 KiB.

asyncio's datagram transport reads each datagram with ``recvfrom(max_size)``, ``max_size`` a
class attribute of 256 KiB: CPython allocates that much for every datagram and shrinks it
after. Past glibc's mmap threshold (128 KiB) that is an mmap, page faults and an munmap a
datagram: 18-22 µs a ``recvfrom`` here against 1.6-2 µs with 64 KiB (a micro-benchmark on
loopback; benchmarks/README.md, capacity), for every RTP, RTCP and STUN datagram a server
reads. No UDP datagram is longer than 65,535 bytes, so nothing is cut short.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection

UDP_LARGEST = 65536  # a UDP length field's range: no datagram is longer


def read_datagrams_whole_and_cheaply(pc: RTCPeerConnection) -> None:
    """Before ``pc`` gathers: each UDP socket its ICE connections open reads into a buffer of
    :data:`UDP_LARGEST` bytes (a transport without asyncio's ``max_size``, uvloop's, is left)."""
    for gatherer in {id(g): g for g in _gatherers(pc)}.values():
        connection = gatherer._connection
        gather = connection.get_component_candidates  # aioice's own, public method

        async def gathered(*args: Any, _gather: Any = gather, _on: Any = connection, **kw: Any) -> Any:
            candidates = await _gather(*args, **kw)
            for protocol in _on._protocols:
                read_whole_and_cheaply(getattr(protocol, "transport", None))
            return candidates

        connection.get_component_candidates = gathered


def read_whole_and_cheaply(transport: Any) -> None:
    """Cap one datagram transport's read buffer at :data:`UDP_LARGEST` (asyncio's; others are left)."""
    if transport is not None and getattr(transport, "max_size", 0) > UDP_LARGEST:
        transport.max_size = UDP_LARGEST


def _gatherers(pc: RTCPeerConnection) -> list[Any]:
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport is not None]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return [dtls.transport.iceGatherer for dtls in transports]


def read_buffer_sizes(pc: RTCPeerConnection) -> list[int]:
    """The read buffer of each UDP socket ``pc``'s ICE connections have open (asyncio's), bytes."""
    return [
        protocol.transport.max_size
        for gatherer in {id(g): g for g in _gatherers(pc)}.values()
        for protocol in gatherer._connection._protocols
        if hasattr(getattr(protocol, "transport", None), "max_size")
    ]
