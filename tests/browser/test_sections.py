"""web_client/js/session.js in real (Debian) Chromium offers each role's sections as media/sections.py
lists them: the kinds in order, the directions with and without tracks."""

from __future__ import annotations

from benchmarks.chrome import chromium, new_page
from media.sections import ROLES, SECTIONS
from tests.media.test_sections import offered

# Build a MediaSession for a role, with the fake devices' tracks on every section that sends
# (or none), and catch the offer it sends.
OFFER = """async ([role, withTracks]) => {
  const { MediaSession } = await import("/static/js/session.js");
  let sdp = null;
  const send = (type, fields) => { if (type === "webrtc_offer") sdp = fields.sdp; return true; };
  const media = new MediaSession({ role, send, stats: false });
  const tracks = {};
  if (withTracks) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const [mic, camera] = [stream.getAudioTracks()[0], stream.getVideoTracks()[0]];
    for (const s of media.sections) if (s.sends) tracks[s.name] = (s.kind === "audio" ? mic : camera).clone();
  }
  const sent = await media.negotiate(tracks);
  const canSend = Object.fromEntries(media.sections.map((s) => [s.name, media.canSend(s.name)]));
  media.close();
  Object.values(tracks).forEach((t) => t.stop());
  return { sent, sdp, canSend };
}"""


async def test_the_web_clients_offers_follow_the_sections_table(server):
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(f"{server.url}/healthz")  # any page of the server's origin (a secure context)
        for role in ROLES:
            table = SECTIONS[role]
            for with_tracks in (True, False):
                result = await page.evaluate(OFFER, [role, with_tracks])
                assert result["sent"] is True
                # Headless Chromium can share a screen, so every section is there.
                expected = [
                    (s.kind, s.direction if with_tracks else s.direction_without_track or s.direction)
                    for s in table
                ]
                assert offered(result["sdp"]) == expected, (role, with_tracks)
                sends = {
                    s.name: (d in ("sendrecv", "sendonly")) for s, (_, d) in zip(table, expected, strict=True)
                }
                assert result["canSend"] == sends, (role, with_tracks)
        assert not page.errors  # type: ignore[attr-defined]
