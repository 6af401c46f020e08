"""Transport-wide sequence numbers on a sender's packets, as a browser's sender puts them.

A browser that negotiated transport-cc numbers every RTP packet it sends on a transport (all
its bundled streams counting on from one counter) in that header extension, and its receiver
(here, the server) answers with feedback of when each arrived. aiortc's senders never number
them, so an aiortc peer that stands in for a browser (the capacity benchmark's clients) keeps
the server on aiortc's REMB estimate instead of the transport-cc work a browser gives it. The
stamped loop (:mod:`._rtp_loop`) writes them when its sender is given a :class:`TransportSequence`.
"""

from __future__ import annotations

import random
from struct import pack

from aiortc.rtp import pack_header_extensions

from media.aiortc_internals._transports import _unpack_extensions


class TransportSequence:
    """One transport's transport-wide sequence numbers, for the header extension ``extension_id``
    (the id the offer gave transport-cc; the answer keeps it). Share one among a peer's senders."""

    def __init__(self, extension_id: int) -> None:
        self.extension_id = extension_id
        self._next = random.getrandbits(16)

    def take(self, count: int) -> int:
        """The first of ``count`` consecutive numbers (16 bits, wrapping)."""
        first = self._next
        self._next = (first + count) & 0xFFFF
        return first


def with_element(profile: int, block: bytes, ident: int, value: bytes) -> tuple[int, bytes]:
    """A packed extension block (RFC 8285) with one more element, last."""
    return pack_header_extensions([*_unpack_extensions(profile, block), (ident, value)])


def packed_with_element(header: bytes, ident: int, value: bytes) -> bytes:
    """A packet's extension header (profile, length in words, block; empty for none) with one
    more element."""
    profile, block = (int.from_bytes(header[:2], "big"), header[4:]) if header else (0, b"")
    profile, block = with_element(profile, block, ident, value)
    return pack("!HH", profile, len(block) >> 2) + block
