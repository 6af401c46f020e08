"""The server's answers line up with each role's offer, section by section, as media/sections.py says."""

from __future__ import annotations

import pytest

from media.browser import BrowserPeer, ToneTrack
from media.room import Room
from media.sections import SECTIONS
from media.sources import TestCardTrack
from telepresence.hosts import HostDesk
from tests.media.test_sections import offered

SENDS = ("sendrecv", "sendonly")
RECEIVES = ("sendrecv", "recvonly")


def assert_lines_up(role: str, offer: str, answer: str) -> None:
    offers, answers = offered(offer), offered(answer)
    table = SECTIONS[role]
    assert [kind for kind, _ in answers] == [s.kind for s in table]
    for s, (_, mine), (_, theirs) in zip(table, offers, answers, strict=True):
        # What the table says comes back does come back; nothing comes back where it says nothing.
        assert (theirs in SENDS) == (s.receives is not None and mine in RECEIVES), (role, s.name, theirs)
        # The server takes what the browser sends on every section that sends.
        if mine in SENDS:
            assert theirs in RECEIVES, (role, s.name, theirs)


def tracks_for(role: str, with_tracks: bool) -> dict:
    if not with_tracks:
        return {}
    table = SECTIONS[role]
    return {s.name: ToneTrack() if s.kind == "audio" else TestCardTrack(320, 180) for s in table if s.sends}


@pytest.mark.parametrize("with_tracks", [True, False], ids=["tracks", "no-tracks"])
@pytest.mark.parametrize("role", ["agent", "customer"])
async def test_a_rooms_answer_lines_up_with_each_sides_offer(role, with_tracks):
    room = Room(label="sections")
    tracks = tracks_for(role, with_tracks)
    peer = BrowserPeer.for_role(role, tracks)
    try:
        offer = await peer.offer()
        assert_lines_up(role, offer, await room.answer(role, offer))
    finally:
        await peer.close()
        await room.close()


@pytest.mark.parametrize("with_tracks", [True, False], ids=["tracks", "no-tracks"])
async def test_the_studios_answer_lines_up_with_the_operators_offer(with_tracks):
    desk = HostDesk()
    host = await desk.start("olga", "aurora")
    peer = BrowserPeer.for_role("operator", tracks_for("operator", with_tracks))
    try:
        offer = await peer.offer()
        assert_lines_up("operator", offer, await host.studio_answer(offer))
    finally:
        await peer.close()
        await desk.close()
