"""Chromium to Chromium through the server: once the agent's camera is at the composite's size,
the customer's video is the agent's own frames, and a layout change hands back to the
composite in the same stream, the picture never stopping."""

from __future__ import annotations

import asyncio

from benchmarks.chrome import chromium, new_page
from media.room import Room

# A MediaSession for `role` with Chromium's fake devices; its offer is caught, the test's room
# answers it. The customer's composite plays in a <video>, whose presented frames are counted.
OFFER = """async (role) => {
  const { MediaSession } = await import("/static/js/session.js");
  let sdp = null;
  const send = (type, fields) => { if (type === "webrtc_offer") sdp = fields.sdp; return true; };
  const media = new MediaSession({ role, send, stats: false });
  const video = role === "agent" ? { width: 640, height: 360 } : false;
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
  await media.negotiate({ mic: stream.getAudioTracks()[0], camera: stream.getVideoTracks()[0] || null });
  window.media = media;
  return sdp;
}"""
PLAY = """() => {
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = new MediaStream([window.media.receiver("camera")]);
  document.body.append(video);
  window.shown = 0;
  const tick = () => { window.shown += 1; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
  video.play();
  window.video = video;
}"""
SHOWN = "() => ({ shown: window.shown, width: window.video.videoWidth, height: window.video.videoHeight })"


async def until(predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.25)


async def test_the_agents_frames_are_forwarded_and_handed_back_without_a_stop(server):
    room = Room(label="passthrough", size="360p")  # the fake camera reaches 640x360 within seconds
    try:
        async with chromium() as browser:
            agent, customer = await new_page(browser), await new_page(browser)
            for page in (agent, customer):
                await page.goto(f"{server.url}/healthz")  # the server's origin: a secure context
            for role, page in (("agent", agent), ("customer", customer)):
                answer = await room.answer(role, await page.evaluate(OFFER, role))
                assert await page.evaluate("(sdp) => window.media.answer(sdp)", answer)
            await customer.evaluate(PLAY)

            async def forwarding() -> bool:
                return room.passthrough.forwarded > 30

            await until(forwarding, timeout=40)
            probe = await customer.evaluate(SHOWN)
            assert (probe["width"], probe["height"]) == (640, 360)

            room.set_layout("side_by_side")

            async def composited() -> bool:
                return not room.passthrough_active

            await until(composited, timeout=5)
            before = (await customer.evaluate(SHOWN))["shown"]

            async def still_playing() -> bool:
                return (await customer.evaluate(SHOWN))["shown"] > before + 20

            await until(still_playing, timeout=10)  # the composite, in the same stream
            assert agent.errors == [] and customer.errors == []  # type: ignore[attr-defined]
    finally:
        await room.close()
