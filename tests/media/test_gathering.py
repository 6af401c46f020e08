"""The server's peers gather only on the addresses it names, and never wait long for a STUN server.

``ice_addresses`` / ``ice_gather_timeout_s`` (media.answer.IceGathering, applied through
media.aiortc_internals.limit_gathering): aiortc has no trickle ICE, so no answer leaves
before gathering ends, and aioice waits 5 s for a STUN or TURN server that never answers.
"""

from __future__ import annotations

import time

from aioice.ice import get_host_addresses
from aiortc import RTCIceServer, RTCPeerConnection
from aiortc import sdp as aiortc_sdp

from media.answer import IceGathering, close_peer, receive_offer

# TEST-NET-3 (RFC 5737): nothing answers there.
UNREACHABLE_STUN = RTCIceServer(urls="stun:203.0.113.7:3478")


async def answer_candidates(gathering: IceGathering, ice_servers=()) -> tuple[list[str], float]:
    """The host addresses in the answer to a plain offer, and how long answering took."""
    offerer = RTCPeerConnection()
    offerer.addTransceiver("audio")
    offerer.addTransceiver("video")
    await offerer.setLocalDescription(await offerer.createOffer())
    started = time.monotonic()
    pc, _, _ = await receive_offer(offerer.localDescription.sdp, ice_servers, "all", gathering)
    try:
        await pc.setLocalDescription(await pc.createAnswer())
        took = time.monotonic() - started
        answer = aiortc_sdp.SessionDescription.parse(pc.localDescription.sdp)
        hosts = [c.ip for m in answer.media for c in m.ice_candidates if c.type == "host"]
        return hosts, took
    finally:
        await close_peer(pc)
        await offerer.close()


async def test_host_candidates_only_on_the_named_addresses() -> None:
    everywhere, _ = await answer_candidates(IceGathering())
    assert set(everywhere) == set(get_host_addresses(use_ipv4=True, use_ipv6=True))
    first = everywhere[0]
    named, _ = await answer_candidates(IceGathering(addresses=(first,)))
    assert set(named) == {first}
    # An address this machine does not have gives no host candidate at all (not every one).
    none, _ = await answer_candidates(IceGathering(addresses=("198.51.100.99",)))
    assert none == []


async def test_a_stun_server_that_never_answers_holds_the_answer_back_only_briefly() -> None:
    hosts, took = await answer_candidates(IceGathering(timeout_s=0.5), [UNREACHABLE_STUN])
    assert hosts, "host candidates are still offered"
    assert took < 1.5, f"answering took {took:.2f} s with a 0.5 s gathering limit (aioice alone: 5 s)"
