"""A peer's UDP sockets read each datagram whole into a 64 KiB buffer, not asyncio's 256 KiB one
(media/aiortc_internals/_datagram_reads.py): every datagram a server reads cost an mmap past glibc's
threshold. Real loopback sockets and peers."""

from __future__ import annotations

import asyncio
import socket

from media import aiortc_internals as internals
from tests.media.test_datagram_guard import answered_peer

LARGEST_UDP_PAYLOAD = 65507  # IPv4: 65,535 less the IP and UDP headers


class Lengths(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.lengths.append(len(data))
        self.arrived.set()


async def test_a_capped_socket_still_reads_the_largest_datagram_whole() -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Lengths, local_addr=("127.0.0.1", 0))
    try:
        internals.read_whole_and_cheaply(transport)
        assert transport.max_size <= 65536  # asyncio's own is 256 KiB
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
            sender.sendto(bytes(LARGEST_UDP_PAYLOAD), transport.get_extra_info("sockname"))
            sender.sendto(b"\x80" + bytes(199), transport.get_extra_info("sockname"))
        async with asyncio.timeout(5):
            while len(protocol.lengths) < 2:
                protocol.arrived.clear()
                await protocol.arrived.wait()
        assert protocol.lengths == [LARGEST_UDP_PAYLOAD, 200]
    finally:
        transport.close()


async def test_every_answered_peer_reads_its_datagrams_into_64_kib() -> None:
    async with answered_peer() as (pc, offerer):
        await pc.setLocalDescription(await pc.createAnswer())  # gathers: the sockets open
        sizes = internals.read_buffer_sizes(pc)
        assert sizes and all(size == 65536 for size in sizes), sizes
        assert all(size == 256 * 1024 for size in internals.read_buffer_sizes(offerer)), "asyncio's own"
