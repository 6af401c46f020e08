"""A process of browsers: aiortc peers that make calls through a server, one call per command.

The churn soak measures the SERVER's memory, so the peers (encoders, decoders, their
frames) live in this child process, not in the process that runs the server:

    python -m tests.calls.browsers WS_URL

reads one JSON command a line on stdin, ``{"ending": ..., "agent_token": ..., "name": ...}``,
plays one call that ends that way (see :data:`ENDINGS`), and answers one JSON line on
stdout: ``{"ok": true, "call_id": ..., "seconds": ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import websockets

from media.browser import BrowserPeer, ToneTrack
from media.sources import TestCardTrack
from tests.conftest import Client

ENDINGS = (
    "customer_end",  # the customer hangs up
    "agent_end",  # the agent hangs up
    "customer_drop",  # the customer's tab goes: the call ends after the rejoin grace
    "agent_drop",  # the agent's tab goes: the call ends after the agent grace, the customer leaves
    "leave_waiting",  # the customer leaves the queue before any agent is there
    "decline",  # the agent declines the offer, the customer leaves
)
MEDIA_S = 0.5  # media flows this long after both sides see their first frames


async def _connect(url: str, label: str) -> Client:
    return Client(await websockets.connect(url, max_size=None), label)


async def _agent(url: str, token: str, *, auto_answer: bool) -> Client:
    agent = await _connect(url, "agent")
    await agent.send("login", token=token)
    await agent.expect("logged_in")
    if auto_answer:
        await agent.send("auto_answer", enabled=True)
    await agent.send("set_status", status="available")
    await agent.expect("agent_status")
    return agent


def _signalling(client: Client):
    async def answer(role: str, sdp: str) -> str:
        await client.send("webrtc_offer", sdp=sdp)
        return (await client.expect("webrtc_answer", timeout=20))["sdp"]

    return answer


async def play(url: str, ending: str, agent_token: str, name: str, media_s: float = MEDIA_S) -> str | None:
    """One call from join to its end; returns the call id (None for endings before a call)."""
    if ending == "leave_waiting":
        customer = await _connect(url, name)
        await customer.send("join", name=name)
        await customer.expect("welcome")
        await customer.send("leave")
        await customer.expect("left")
        await customer.close()
        return None
    agent = await _agent(url, agent_token, auto_answer=ending != "decline")
    customer = await _connect(url, name)
    try:
        await customer.send("join", name=name)
        await customer.expect("welcome")
        if ending == "decline":
            offer = await agent.expect("offer", timeout=10)
            await agent.send("decline", offer_id=offer["offer_id"])
            await agent.expect("offer_withdrawn", timeout=10)
            await customer.send("leave")
            await customer.expect("left")
            return None
        call_id = (await customer.expect("call_started", timeout=10))["call_id"]
        await agent.expect("call_started", timeout=10)
        agent_peer = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440))
        customer_peer = BrowserPeer.customer(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(880))
        async with agent_peer, customer_peer:
            await agent_peer.negotiate(_signalling(agent))
            await customer_peer.negotiate(_signalling(customer))
            await customer_peer.video(0).wait(20)  # the composite
            await agent_peer.video(2).wait(20)  # the customer's camera, forwarded
            await asyncio.sleep(media_s)
            if ending == "customer_end":
                await customer.send("end_call")
            elif ending == "agent_end":
                await agent.send("end_call")
            elif ending == "customer_drop":
                await customer.close()
            elif ending == "agent_drop":
                await agent.close()
            else:
                raise ValueError(f"unknown ending {ending!r}")
            if ending == "agent_drop":
                ended = await customer.expect("call_ended", timeout=20)
                assert ended["requeued"], ended
                await customer.send("leave")
                await customer.expect("left")
            else:
                await agent.expect("call_ended", timeout=20)
        return call_id
    finally:
        with contextlib.suppress(Exception):
            await customer.close()
        with contextlib.suppress(Exception):
            await agent.close()


async def main(url: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command: dict[str, Any] = json.loads(line)
        started = time.monotonic()
        try:
            call_id = await play(
                url,
                command["ending"],
                command["agent_token"],
                command["name"],
                command.get("media_s", MEDIA_S),
            )
            reply: dict[str, Any] = {"ok": True, "call_id": call_id}
        except Exception as exc:  # reported to the test, which fails with it
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply["seconds"] = round(time.monotonic() - started, 2)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
