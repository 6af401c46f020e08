"""A WHEP viewer this project did not write: Debian's Chromium plays the live host's program,
its DTLS as client against the server's passive answer, with the page's own fetch() and
RTCPeerConnection (no code of ours in the browser)."""

from __future__ import annotations

import pytest

from tests.calls.test_media_calls import media_server
from tests.doors.whip import start_host

pytest.importorskip("playwright")
chrome = pytest.importorskip("benchmarks.chrome")
if not chrome.CHROMIUM.exists():
    pytest.skip(f"Debian's Chromium at {chrome.CHROMIUM} is not installed", allow_module_level=True)

# A minimal WHEP player, as any page would write it: offer recvonly, gather, POST, answer, play.
WHEP_PLAYER = """async ([url]) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const video = document.createElement("video");
  video.dataset.testid = "whep"; video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.append(video);
  pc.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
  });
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  if (response.status !== 201) throw new Error(`WHEP ${response.status}: ${await response.text()}`);
  window.whepSession = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  window.whepPeer = pc;
  return window.whepSession;
}"""


async def test_chromium_plays_the_hosts_program_over_whep(tmp_path):
    async with media_server(tmp_path) as server:
        await start_host(server)
        async with chrome.chromium() as browser:
            page = await chrome.new_page(browser)
            await page.goto(server.url + "/healthz")
            location = await page.evaluate(WHEP_PLAYER, [server.url + "/whep/host"])
            assert location.startswith("/whep/host/")
            probe = await chrome.playing(page, "whep", frames=20)
            assert (probe["width"], probe["height"]) == (1280, 720)
            # The avatar (Aurora's deep blue backdrop), not a black or grey picture.
            corner = (await chrome.sample(page, "whep", [(40, 40)]))[0]
            assert corner[2] > 60 and corner[2] > corner[0] + 20, corner
            dtls = await page.evaluate("""async () => {
              const stats = await window.whepPeer.getStats();
              for (const s of stats.values()) if (s.type === "transport") return s.dtlsRole;
            }""")
            assert dtls == "client"  # the server answered a=setup:passive
            deleted = await page.evaluate(
                "async (url) => (await fetch(url, {method: 'DELETE'})).status", server.url + location
            )
            assert deleted == 200 and not server.app.state.doors.sessions
