"""Round-trip time for a browser that only receives: RTCP XR reference times answered (RFC 3611).

A browser maps a stream's RTP timestamps onto its own clock with the sender's reports
AND the round-trip time, and without a round-trip time it never does: Chromium then
gives no ``captureTime`` in ``requestVideoFrameCallback`` metadata for the composite, so a
page cannot show glass-to-glass latency. A stream's receiver learns the round trip by
sending a receiver reference time report (XR block 4) that the sender answers with a
DLRR block (XR block 5) — which aiortc does not do. :class:`ReferenceTimeReplies` does.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from aiortc import RTCDtlsTransport

from media import aiortc_internals as internals

RTCP_XR = 207
RRTR = 4
DLRR = 5


def reference_times(data: bytes) -> list[tuple[int, int]]:
    """(reporter SSRC, middle 32 bits of its NTP time) for each RRTR block in a compound RTCP packet."""
    found = []
    pos = 0
    while pos + 4 <= len(data):
        packet_type = data[pos + 1]
        end = pos + 4 * (struct.unpack_from("!H", data, pos + 2)[0] + 1)
        if end > len(data):
            break
        if packet_type == RTCP_XR and end - pos >= 8:
            ssrc = struct.unpack_from("!I", data, pos + 4)[0]
            block = pos + 8
            while block + 4 <= end:
                block_type = data[block]
                block_end = block + 4 * (struct.unpack_from("!H", data, block + 2)[0] + 1)
                if block_end > end:
                    break
                if block_type == RRTR and block_end - block >= 12:
                    ntp = struct.unpack_from("!Q", data, block + 4)[0]
                    found.append((ssrc, (ntp >> 16) & 0xFFFFFFFF))
                block = block_end
        pos = end
    return found


def delay_since_last_rr(sender_ssrc: int, replies: list[tuple[int, int, float]]) -> bytes:
    """An XR packet with one DLRR block: for each (SSRC, LRR, seconds since it came)."""
    body = b"".join(
        struct.pack("!III", ssrc, lrr, min(int(delay * 65536), 0xFFFFFFFF)) for ssrc, lrr, delay in replies
    )
    block = struct.pack("!BBH", DLRR, 0, len(body) // 4) + body
    return struct.pack("!BBHI", 0x80, RTCP_XR, (len(block) + 8) // 4 - 1, sender_ssrc) + block


class ReferenceTimeReplies:
    """Answers every receiver reference time report that reaches one transport, at once."""

    def __init__(self, transport: RTCDtlsTransport, sender_ssrc: int) -> None:
        self.sender_ssrc = sender_ssrc
        self.replied = 0
        self._undo: Callable[[], None] | None = internals.watch_received_rtcp_data(transport, self._on_rtcp)

    async def _on_rtcp(self, transport: RTCDtlsTransport, data: bytes) -> None:
        received = time.monotonic()
        found = reference_times(data)
        if not found:
            return
        delay = time.monotonic() - received
        try:
            await internals.send_rtcp(
                transport, delay_since_last_rr(self.sender_ssrc, [(s, lrr, delay) for s, lrr in found])
            )
        except ConnectionError:
            return
        self.replied += 1

    def stop(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()
