"""RTP taken off the socket as it arrives, for a peer that only counts what it receives.

aiortc hands each datagram through aioice's STUN parse (it raises on every RTP packet), a
queue, the DTLS transport's coroutine, SRTP, an ``RtpPacket`` parse and the router, then the
receiver's bitrate estimator, statistics, NACK generator and depayloader, before a jitter
buffer sees it: per packet Python that made a benchmark's receiving clients cost nearly what
the server they measure does. :func:`take_received_rtp` unprotects each SRTP datagram in the
socket's own callback and hands the plain datagram to the caller at once. DTLS, STUN and RTCP
still go aiortc's way (this peer's senders still get their keyframe requests and NACKs); what
its receivers would have sent from their statistics (receiver reports, REMB, NACKs, PLI) is
not sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp
from aiortc import RTCDtlsTransport

from media.aiortc_internals._names import _wrap_method


def take_received_rtp(dtls: RTCDtlsTransport, take: Callable[[bytes], None]) -> None:
    """From when ``dtls`` has its SRTP keys, hand every RTP datagram it receives (plain, after
    SRTP) to ``take`` instead of aiortc's receivers; one that fails SRTP is dropped, as aiortc
    drops it. Call once the peer has gathered (its sockets exist), before media flows."""
    protocols = dtls.transport._connection._protocols  # type: ignore[attr-defined]
    if not protocols:
        raise RuntimeError("take_received_rtp before the peer gathered: it has no socket to take from")
    for protocol in protocols:
        _wrap_method(protocol, "datagram_received", lambda received: _taking(dtls, take, received))


def _taking(dtls: RTCDtlsTransport, take: Callable[[bytes], None], received: Callable) -> Callable:
    def datagram_received(data: bytes, addr: tuple) -> None:
        srtp = dtls._rx_srtp  # type: ignore[attr-defined]  # set when DTLS has finished
        # RTP: version 2, and not RTCP (packet types 192-223 in the second byte; aiortc's is_rtcp).
        if srtp is not None and 127 < data[0] < 192 and len(data) > 12 and not 191 < data[1] < 224:
            try:
                plain = srtp.unprotect(data)
            except pylibsrtp.Error:
                return
            take(plain)
            return
        received(data, addr)

    return datagram_received
