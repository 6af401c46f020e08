"""The capacity suite's client peers cost the machine little (benchmarks/capacity_clients.py)."""

from __future__ import annotations

from benchmarks.capacity_clients import _peer
from media import aiortc_internals as internals


async def test_a_client_peer_reads_its_datagrams_into_64_kib_as_the_servers_do() -> None:
    pc, _ = _peer("agent", {})
    try:
        await pc.setLocalDescription(await pc.createOffer())  # gathers: the sockets open
        sizes = internals.read_buffer_sizes(pc)
        assert sizes and all(size == 65536 for size in sizes), sizes
    finally:
        await pc.close()
