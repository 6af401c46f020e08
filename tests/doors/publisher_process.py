"""A WHIP publisher in a process of its own, for a test to kill -9: ``python -m
tests.doors.publisher_process BASE_URL PATH TOKEN``. Prints ``connected`` once media flows."""

from __future__ import annotations

import asyncio
import sys

from tests.doors.whip import WhipClient, publisher


async def main(base_url: str, path: str, token: str) -> None:
    peer = publisher()
    connected = asyncio.Event()
    peer.pc.on("connectionstatechange", lambda: peer.pc.connectionState == "connected" and connected.set())
    await peer.negotiate(WhipClient(base_url, path, token).answer)
    await connected.wait()
    print("connected", flush=True)
    await asyncio.Event().wait()  # publish until killed


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
