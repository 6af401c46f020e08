"""Offers the server cannot answer get `bad_sdp` and the call carries on with the next good offer."""

from __future__ import annotations

import re

import pytest

from media.browser import BrowserPeer, ToneTrack
from media.room import MediaError, Room
from media.sources import TestCardTrack
from tests.calls.test_media_calls import media_server, open_call, signalling


def without_audio(sdp: str) -> str:
    """The offer with its m=audio section cut out; the BUNDLE group still names it."""
    sections = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    return "".join(s for s in sections if not s.startswith("m=audio"))


@pytest.mark.parametrize("role", ["customer", "agent"])
async def test_an_offer_with_its_audio_section_cut_out_is_bad_sdp_and_the_call_carries_on(tmp_path, role):
    async with media_server(tmp_path) as server:
        agent_ws, customer_ws, call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=TestCardTrack(640, 360, fps=30), mic=ToneTrack(440))
        customer = BrowserPeer.customer(mic=ToneTrack(880))
        async with agent, customer:
            sender, ws = (customer, customer_ws) if role == "customer" else (agent, agent_ws)
            await ws.send("webrtc_offer", sdp=without_audio(await sender.offer()))
            error = await ws.expect("error", timeout=15)
            assert error["code"] == "bad_sdp" and "mid" in error["message"], error
            # The same peer offers again, whole: the call has media both ways.
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            assert (await customer.video(0).wait(15)).width == 640
            assert server.switchboard.calls[call_id].active
            assert not [m for m in agent_ws.received + customer_ws.received if m.get("code") == "internal"]


async def test_a_room_refuses_the_cut_offer_and_closes_nothing_half_built():
    room = Room(label="cut")
    peer = BrowserPeer.customer()
    try:
        with pytest.raises(MediaError) as refused:
            await room.answer("customer", without_audio(await peer.offer()))
        assert refused.value.code == "bad_sdp"
        assert "customer" not in room.peers
    finally:
        await peer.close()
        await room.close()
