"""Datagrams that would end a stock aiortc peer's media, dropped before its DTLS transport reads them.

Anyone can send a UDP datagram to a peer's port. aiortc's DTLS transport reads ``data[0]`` of
each one (an empty datagram raises IndexError) and passes an SRTP-range one to pylibsrtp,
which raises ValueError, not its own Error, for one longer than its 1500-byte buffer; either
ends the transport's receive task, and with it the peer's media, for good. Every peer the
server answers gets this guard (media.answer); a room's peers also receive directly
(:mod:`._direct_receive`), which has its own checks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)

SRTP_BUFFER = 1500  # pylibsrtp unprotects into a buffer of this many bytes


def harmful(data: bytes) -> bool:
    """Whether aiortc's DTLS transport would fail on this datagram rather than drop it."""
    return not data or (127 < data[0] < 192 and len(data) > SRTP_BUFFER)


def _ice_transports(pc: RTCPeerConnection) -> set:
    transports = {t.receiver.transport.transport for t in pc.getTransceivers() if t.receiver.transport}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport.transport)
    return transports


def is_guarded(pc: RTCPeerConnection) -> bool:
    """Whether every ICE transport of ``pc`` drops :func:`harmful` datagrams."""
    return all(getattr(ice._recv, "guarded", False) for ice in _ice_transports(pc))  # type: ignore[attr-defined]


def guard_received_datagrams(pc: RTCPeerConnection) -> None:
    """Drop :func:`harmful` datagrams on every ICE transport the peer has now (call it once its
    remote description is set, before it gathers: the sockets are open from then on)."""
    for ice in _ice_transports(pc):
        recv: Callable[[], Awaitable[bytes]] = ice._recv  # type: ignore[attr-defined]
        if getattr(recv, "guarded", False):
            continue

        async def guarded(recv: Callable[[], Awaitable[bytes]] = recv) -> bytes:
            while True:
                data = await recv()
                if not harmful(data):
                    return data
                logger.debug("dropped a %d-byte datagram no DTLS/SRTP reader takes", len(data))

        guarded.guarded = True  # type: ignore[attr-defined]
        ice._recv = guarded  # type: ignore[attr-defined]
