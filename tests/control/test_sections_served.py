"""The web client reads the media sections table from the server, generated from media/sections.py."""

from __future__ import annotations

import httpx

from media import sections
from telepresence.app import SECTIONS_PATH, create_app
from telepresence.config import Settings


async def test_the_served_sections_are_the_python_table(tmp_path):
    app = create_app(Settings(state_dir=tmp_path, secret="0123456789abcdef0123"))
    # No lifespan (ASGITransport runs none): the route needs no switchboard.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get(SECTIONS_PATH)
    assert response.status_code == 200
    # A JSON module script is refused unless it is served as JSON.
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == sections.as_json()
    assert set(response.json()) == {"agent", "customer", "operator"}
    first = response.json()["agent"][0]
    assert first == {
        "name": "mic",
        "kind": "audio",
        "direction": "sendrecv",
        "sends": "the agent's microphone",
        "receives": "the customer's microphone",
        "optional": False,
        "direction_without_track": None,
        "needs": None,
    }
    # The client imports it from its own folder: ./sections.json next to session.js.
    assert (app.state.settings.web_root / "js" / "session.js").read_text().count(
        'from "./sections.json"'
    ) == 1
