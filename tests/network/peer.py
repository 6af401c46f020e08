"""One side of a call, as an aiortc "browser" in its own namespace of the network lab.

    python -m tests.network.peer agent BASE_URL --token TOKEN [--turn-transport tcp]
    python -m tests.network.peer customer BASE_URL [--hold-s 2] [--turn-transport udp]
    python -m tests.network.peer credentials BASE_URL

Each waits for the server's /healthz (the test's own process cannot reach a namespace), plays its
side of one call through the protocol and prints JSON lines on stdout: ``{"event": "ready"}``
(agent: logged in and available; with the TURN username it was sent), ``{"event": "media", ...}``
when the first frame of what it waits for arrives (customer: the composite; agent: the customer's
camera, forwarded), with the nominated ICE pair, the types of its own candidates and of the
server's answer, the loudness it hears and, for the customer, the frames counted over
``--hold-s``; ``{"event": "ended"}`` at the end; ``{"event": "error", "error": ...}`` on any
failure (exit 1). The customer ends the call after ``--hold-s``; the agent waits for that.

Each peer uses the ``ice_servers`` and ``ice_transport_policy`` of its ``welcome`` /
``logged_in``, as the web client does. aiortc uses only the first TURN URL where a browser
tries each: ``--turn-transport`` keeps the URLs of one transport (the agent behind its UDP
firewall: tcp).

``credentials`` checks the TURN credentials of ``welcome`` against coturn directly (aioice
allocations over UDP and TCP): used at once, after their expiry (``turn_ttl_s``), freshly
minted by a second ``join``, and forged (the right username, a password from another secret).
It prints one ``{"event": "credentials", ...}`` line with each outcome ("ok" or the error).
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
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration

from media.browser import BrowserPeer, ToneTrack, rtc_configuration
from media.sources import TestCardTrack
from telepresence import turn
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
    relay) and, for a local relay candidate, how it reaches the TURN server ("turn/udp",
    "turn/tcp"). Reads aioice internals: a test's diagnostic, not an API."""
    transport = peer.pc.getTransceivers()[0].sender.transport.transport
    pair = next(iter(transport._connection._nominated.values()))
    local, remote = pair.local_candidate, pair.remote_candidate
    via = None
    if local.type == "relay":  # pair.protocol's transport is aioice's TurnTransport
        inner = getattr(pair.protocol.transport, "_TurnTransport__inner_protocol", None)
        via = {"TurnClientTcpProtocol": "turn/tcp", "TurnClientUdpProtocol": "turn/udp"}.get(
            type(inner).__name__, type(inner).__name__
        )
    return {
        "local": f"{local.type} {local.host}:{local.port}",
        "remote": f"{remote.type} {remote.host}:{remote.port}",
        "via": via,
    }


def local_candidate_types(peer: BrowserPeer) -> list[str]:
    """The types of every candidate this peer gathered (public API: the ICE gatherer's)."""
    gatherer = peer.pc.getTransceivers()[0].sender.transport.transport.iceGatherer
    return sorted({c.type for c in gatherer.getLocalCandidates()})


def sdp_candidate_types(sdp: str) -> list[str]:
    """The types of the candidates an SDP lists (``a=candidate:... typ TYPE``)."""
    return sorted({line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line})


def turn_username(message: dict[str, Any]) -> str | None:
    """The TURN username of ``welcome`` / ``logged_in`` (None without TURN)."""
    return next((s["username"] for s in message.get("ice_servers", []) if "username" in s), None)


def configuration(message: dict[str, Any], turn_transport: str | None) -> RTCConfiguration:
    return rtc_configuration(
        message.get("ice_servers", []),
        message.get("ice_transport_policy", "all"),
        turn_transport=turn_transport,
    )


async def hear(peer: BrowserPeer, timeout_s: float = 5.0) -> float:
    """The loudness heard, waiting up to ``timeout_s`` for it to be above silence."""
    for _ in range(int(timeout_s / 0.05)):  # polled: AudioSink has no event to wait on
        if peer.audio.loudness() > 0:
            break
        await asyncio.sleep(0.05)
    return peer.audio.loudness()


class Answerer:
    """Sends the offer to the server, returns its answer (kept, for its candidates)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.sdp = ""

    async def __call__(self, role: str, sdp: str) -> str:
        await self.client.send("webrtc_offer", sdp=sdp)
        self.sdp = (await self.client.expect("webrtc_answer", timeout=30))["sdp"]
        return self.sdp


async def agent(ws_url: str, token: str, turn_transport: str | None) -> None:
    client = Client(await websockets.connect(ws_url, max_size=None), "agent")
    await client.send("login", token=token)
    logged_in = await client.expect("logged_in")
    await client.send("auto_answer", enabled=True)
    await client.send("set_status", status="available")
    await client.expect("agent_status")
    say("ready", turn_user=turn_username(logged_in), policy=logged_in.get("ice_transport_policy"))
    await client.expect("call_started", timeout=60)
    started = time.monotonic()
    async with BrowserPeer.agent(
        camera=TestCardTrack(640, 360, fps=30),
        mic=ToneTrack(440),
        configuration=configuration(logged_in, turn_transport),
    ) as peer:
        answer = Answerer(client)
        await peer.negotiate(answer)
        await peer.video(2).wait(30)  # the customer's camera, forwarded by the server
        seconds = round(time.monotonic() - started, 3)
        say(
            "media",
            seconds=seconds,
            loudness=await hear(peer),
            pair=nominated_pair(peer),
            local_types=local_candidate_types(peer),
            answer_types=sdp_candidate_types(answer.sdp),
        )
        await client.expect("call_ended", timeout=60)
    await client.close()
    say("ended")


async def customer(ws_url: str, hold_s: float, turn_transport: str | None) -> None:
    client = Client(await websockets.connect(ws_url, max_size=None), "customer")
    await client.send("join", name="Netlab customer")
    welcome = await client.expect("welcome")
    await client.expect("call_started", timeout=60)
    started = time.monotonic()
    async with BrowserPeer.customer(
        camera=TestCardTrack(640, 360, fps=30),
        mic=ToneTrack(880),
        configuration=configuration(welcome, turn_transport),
    ) as peer:
        answer = Answerer(client)
        await peer.negotiate(answer)
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
            loudness=await hear(peer),
            pair=nominated_pair(peer),
            local_types=local_candidate_types(peer),
            answer_types=sdp_candidate_types(answer.sdp),
            turn_user=turn_username(welcome),
        )
        await client.send("end_call")
        await client.expect("call_ended", timeout=20)
    await client.close()
    say("ended")


class _Sink(asyncio.DatagramProtocol):
    pass


async def allocate(entry: dict[str, Any], transport: str, password: str | None = None) -> str:
    """A TURN allocation with ``entry``'s credentials on its ``transport`` URL: "ok" or the error."""
    (url,) = [u for u in entry["urls"] if u.endswith(f"?transport={transport}")]
    host, _, port = url.split(":", 1)[1].split("?")[0].partition(":")
    try:
        endpoint, _ = await asyncio.wait_for(
            create_turn_endpoint(
                _Sink,
                (host, int(port)),
                entry["username"],
                password or entry["credential"],
                transport=transport,
            ),
            10,
        )
    except Exception as exc:  # the outcome is what is reported
        return f"{type(exc).__name__}: {exc}"
    endpoint.close()
    return "ok"


async def turn_entry(ws_url: str) -> dict[str, Any]:
    client = Client(await websockets.connect(ws_url, max_size=None), "customer")
    await client.send("join", name="Netlab credentials")
    welcome = await client.expect("welcome")
    await client.close()
    (entry,) = [s for s in welcome["ice_servers"] if "username" in s]
    return dict(entry)


async def credentials(ws_url: str) -> None:
    entry = await turn_entry(ws_url)
    expiry = int(entry["username"].split(":", 1)[0])
    outcome: dict[str, Any] = {"username": entry["username"], "ttl_left_s": round(expiry - time.time(), 3)}
    for transport in ("udp", "tcp"):
        outcome[f"fresh_{transport}"] = await allocate(entry, transport)
        forged = turn.password("not-the-secret", entry["username"])
        outcome[f"forged_{transport}"] = await allocate(entry, transport, forged)
    # coturn refuses a username once its EXPIRY (whole seconds) is below its own clock.
    await asyncio.sleep(max(0.0, expiry + 1.2 - time.time()))
    for transport in ("udp", "tcp"):
        outcome[f"expired_{transport}"] = await allocate(entry, transport)
    again = await turn_entry(ws_url)
    outcome["again_username"] = again["username"]
    for transport in ("udp", "tcp"):
        outcome[f"again_{transport}"] = await allocate(again, transport)
    say("credentials", **outcome)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=("agent", "customer", "credentials"))
    parser.add_argument("base_url", help="http://HOST:PORT of the server")
    parser.add_argument("--token", help="the agent's login token")
    parser.add_argument("--hold-s", type=float, default=2.0, help="customer: media time before hanging up")
    parser.add_argument(
        "--turn-transport", choices=("udp", "tcp"), help="use only the TURN URLs of this transport"
    )
    args = parser.parse_args(argv)
    ws_url = args.base_url.replace("http", "ws", 1) + "/ws"
    try:
        await wait_healthy(args.base_url)
        if args.role == "agent":
            await agent(ws_url, args.token, args.turn_transport)
        elif args.role == "customer":
            await customer(ws_url, args.hold_s, args.turn_transport)
        else:
            await credentials(ws_url)
    except Exception as exc:  # reported to the test, which fails with it
        say("error", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
