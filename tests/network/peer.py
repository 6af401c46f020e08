"""One side of a call, as an aiortc "browser" in its own namespace of the network lab.

    python -m tests.network.peer agent BASE_URL --token TOKEN
    python -m tests.network.peer customer BASE_URL [--hold-s 2]

Each waits for the server's /healthz (the test's own process cannot reach a namespace), plays its
side of one call through the protocol and prints JSON lines on stdout: ``{"event": "ready"}``
(agent: logged in and available), ``{"event": "media", ...}`` when the first frame of what it
waits for arrives (customer: the composite; agent: the customer's camera, forwarded), with the
nominated ICE pair and, for the customer, the frames counted over ``--hold-s``;
``{"event": "ended"}`` at the end; ``{"event": "error", "error": ...}`` on any failure (exit 1).
The customer ends the call after ``--hold-s``; the agent waits for that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import httpx
import websockets

from media.browser import BrowserPeer, ToneTrack
from media.sources import TestCardTrack
from tests.conftest import Client


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def wait_healthy(base_url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"{base_url}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


def nominated_pair(peer: BrowserPeer) -> dict[str, Any]:
    """The ICE pair aiortc nominated: each end's address and candidate type (host, srflx, prflx,
    relay). Reads aioice internals: a test's diagnostic, not an API."""
    transport = peer.pc.getTransceivers()[0].sender.transport.transport
    pair = next(iter(transport._connection._nominated.values()))
    local, remote = pair.local_candidate, pair.remote_candidate
    return {
        "local": f"{local.type} {local.host}:{local.port}",
        "remote": f"{remote.type} {remote.host}:{remote.port}",
    }


def answerer(client: Client):
    async def answer(role: str, sdp: str) -> str:
        await client.send("webrtc_offer", sdp=sdp)
        return (await client.expect("webrtc_answer", timeout=30))["sdp"]

    return answer


async def agent(ws_url: str, token: str) -> None:
    client = Client(await websockets.connect(ws_url, max_size=None), "agent")
    await client.send("login", token=token)
    await client.expect("logged_in")
    await client.send("auto_answer", enabled=True)
    await client.send("set_status", status="available")
    await client.expect("agent_status")
    say("ready")
    await client.expect("call_started", timeout=60)
    started = time.monotonic()
    async with BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440)) as peer:
        await peer.negotiate(answerer(client))
        await peer.video(2).wait(30)  # the customer's camera, forwarded by the server
        say("media", seconds=round(time.monotonic() - started, 3), pair=nominated_pair(peer))
        await client.expect("call_ended", timeout=60)
    await client.close()
    say("ended")


async def customer(ws_url: str, hold_s: float) -> None:
    client = Client(await websockets.connect(ws_url, max_size=None), "customer")
    await client.send("join", name="Netlab customer")
    await client.expect("welcome")
    await client.expect("call_started", timeout=60)
    started = time.monotonic()
    async with BrowserPeer.customer(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(880)) as peer:
        await peer.negotiate(answerer(client))
        composite = peer.video(0)
        await composite.wait(30)
        first = time.monotonic() - started
        count = composite.count
        await asyncio.sleep(hold_s)
        fps = (composite.count - count) / hold_s
        say(
            "media",
            seconds=round(first, 3),
            fps=round(fps, 1),
            loudness=peer.audio.loudness(),
            pair=nominated_pair(peer),
        )
        await client.send("end_call")
        await client.expect("call_ended", timeout=20)
    await client.close()
    say("ended")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("agent", "customer"))
    parser.add_argument("base_url", help="http://HOST:PORT of the server")
    parser.add_argument("--token", help="the agent's login token")
    parser.add_argument("--hold-s", type=float, default=2.0, help="customer: media time before hanging up")
    args = parser.parse_args(argv)
    ws_url = args.base_url.replace("http", "ws", 1) + "/ws"
    try:
        await wait_healthy(args.base_url)
        if args.role == "agent":
            await agent(ws_url, args.token)
        else:
            await customer(ws_url, args.hold_s)
    except Exception as exc:  # reported to the test, which fails with it
        say("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
