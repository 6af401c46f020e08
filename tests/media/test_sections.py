"""The media sections table: its shape, the server's look-ups, docs/protocol.md, and BrowserPeer's offers."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from media import sections
from media.browser import BrowserPeer, ToneTrack
from media.sections import SECTIONS, SectionMismatch, match, position, position_of_kind, section
from media.sources import TestCardTrack

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SENDING = ("sendrecv", "sendonly")


@pytest.mark.parametrize("role", sections.ROLES)
def test_each_role_has_unique_names_a_required_head_and_an_optional_tail(role):
    table = SECTIONS[role]
    assert len({s.name for s in table}) == len(table)
    optional = [s.optional for s in table]
    assert optional == sorted(optional), "only a tail can be left out: the server maps by position"
    required = [s for s in table if not s.optional]
    assert {"audio", "video"} <= {s.kind for s in required}  # no video section: the server refuses
    for s in table:
        assert s.needs is None or (s.needs in sections.NEEDS and s.optional)
        assert (s.direction in SENDING) == (s.sends is not None), s
        assert s.receives is None or s.direction in ("sendrecv", "recvonly"), s
        # Without a track a section can only stop sending, and it then has to receive something.
        assert s.direction_without_track is None or (
            s.direction_without_track == "recvonly" and s.receives
        ), s


def test_positions_name_what_the_room_indexes():
    assert position("agent", "screen") == 2 and position_of_kind("agent", "screen") == 1
    assert position("agent", "customer_screen") == 4 and position_of_kind("agent", "customer_screen") == 3
    assert position_of_kind("customer", "camera") == 0 and position_of_kind("customer", "mic") == 0
    assert position_of_kind("operator", "camera") == 0
    assert section("customer", "camera").direction_without_track == "recvonly"
    with pytest.raises(KeyError):
        section("customer", "customer_camera")
    with pytest.raises(KeyError):
        sections.sections_of("viewer")


def fake(*kinds: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(kind=kind) for kind in kinds]


def test_match_names_an_offers_transceivers_in_order():
    agent = fake("audio", "video", "video", "video", "video")
    names = ["mic", "camera", "screen", "customer_camera", "customer_screen"]
    assert match("agent", agent) == dict(zip(names, agent, strict=True))
    customer = fake("audio", "video")  # a browser that cannot share a screen leaves out the tail
    assert match("customer", customer) == {"mic": customer[0], "camera": customer[1]}


@pytest.mark.parametrize(
    ("role", "kinds", "words"),
    [
        ("customer", ("audio",), "lacks its camera"),
        ("customer", ("video", "video"), "section 1 (mic) is audio, not video"),
        ("operator", ("audio", "video", "video"), "at most 2"),
        ("agent", ("audio", "video", "audio"), "section 3 (screen) is video"),
    ],
)
def test_match_refuses_offers_that_do_not_follow_the_table(role, kinds, words):
    with pytest.raises(SectionMismatch, match=re.escape(words)):
        match(role, fake(*kinds))


def docs_table() -> list[tuple[str, ...]]:
    """The cells of the sections table in docs/protocol.md's WebRTC section, header and rule included."""
    webrtc = DOC.read_text().split("\n## WebRTC\n", 1)[1].split("\n## ", 1)[0]
    for block in webrtc.split("\n\n"):
        lines = block.strip().splitlines()
        rows = [tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in lines]
        if rows and rows[0] == sections.DOCS_HEADER:
            return rows
    raise AssertionError(
        "docs/protocol.md's WebRTC section has no sections table: `python -m media.sections`"
    )


def test_the_docs_table_is_the_python_table():
    _header, rule, *rows = docs_table()
    assert all(set(cell) <= set("-:") for cell in rule)
    assert rows == sections.docs_rows(), (
        "docs/protocol.md's WebRTC table differs from media/sections.py: paste `python -m media.sections`"
    )


def offered(sdp: str) -> list[tuple[str, str]]:
    """(kind, direction) of each m-section of an SDP, in order."""
    found = []
    for part in re.split(r"(?m)^(?=m=)", sdp)[1:]:
        kind = part[2:].split(" ", 1)[0]
        direction = re.search(r"(?m)^a=(sendrecv|sendonly|recvonly|inactive)\r?$", part).group(1)
        found.append((kind, direction))
    return found


@pytest.mark.parametrize("role", sections.ROLES)
async def test_browser_peer_offers_the_tables_sections_as_the_web_client_does(role):
    table = SECTIONS[role]
    tracks = {s.name: ToneTrack() if s.kind == "audio" else TestCardTrack(320, 180) for s in table if s.sends}
    with_tracks = BrowserPeer.for_role(role, tracks)
    bare = BrowserPeer.for_role(role)
    try:
        assert offered(await with_tracks.offer()) == [(s.kind, s.direction) for s in table]
        expected = [(s.kind, s.direction_without_track or s.direction) for s in table]
        assert offered(await bare.offer()) == expected
    finally:
        await with_tracks.close()
        await bare.close()
        for track in tracks.values():
            track.stop()
