"""Interop with GStreamer clients this project did not write (tests/doors/gstreamer.py):
Debian's simple-whip-client publishing a test pattern as an agent's camera, which the customer
sees in the composite until the publisher ends (DELETE) or vanishes (killed); and GStreamer's
webrtcbin as a WHEP viewer of the live host."""

from __future__ import annotations

import signal

import pytest

from media.browser import BrowserPeer, ToneTrack
from tests.calls.test_media_calls import RED, media_server, open_call, red_band, signalling, wait_for
from tests.doors import gstreamer
from tests.doors.test_whip_agent import FULL, blue_band, card
from tests.doors.whip import start_host

# whip-client DELETEs its session on SIGINT; killed, it vanishes, and the server's idle timeout
# (3 s here; 60 s where the DELETE must be what ends it) gives the browser's camera back.
ENDINGS = {"DELETE": (signal.SIGINT, 60), "killed": (signal.SIGKILL, 3)}


@pytest.mark.parametrize(
    ("codec", "ending"), [("VP8", "DELETE"), ("H264", "killed")], ids=["VP8, DELETE", "H264, killed"]
)
async def test_whip_client_publishes_the_agents_camera_until_it_ends(tmp_path, codec, ending):
    encoder = {"VP8": "vp8enc", "H264": "x264enc"}[codec]
    if reason := gstreamer.missing_for_whip(encoder, "opusenc", "videotestsrc", "audiotestsrc"):
        pytest.skip(reason)
    sig, idle_s = ENDINGS[ending]
    async with media_server(tmp_path, media_door_idle_s=idle_s) as server:
        agent_ws, customer_ws, _call_id = await open_call(server)
        agent = BrowserPeer.agent(camera=card(RED), mic=ToneTrack(440))
        customer = BrowserPeer.customer()
        async with agent, customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await wait_for(
                lambda: customer.video(0).latest is not None and red_band(customer.video(0).latest, FULL)
            )
            publishing = gstreamer.whip_client(
                server.url + "/whip/agent",
                server.token("agent-Ann"),
                tmp_path,
                video=gstreamer.video_pipeline("blue", codec),
                audio=gstreamer.audio_pipeline(660),
            )
            async with publishing as whip:
                try:
                    assert (await agent_ws.expect("camera_source", timeout=15))["source"] == "whip"
                    await wait_for(lambda: blue_band(customer.video(0).latest, FULL), timeout=15)
                    await wait_for(lambda: customer.audio.loudness() > 500)  # the tone, not silence
                except AssertionError as failed:
                    raise AssertionError(f"{failed}\nwhip-client said:\n{whip.output()}") from None
                (session,) = server.app.state.doors.sessions.values()
                assert session.path == "/whip/agent"
                await whip.stop(sig)
            assert (await agent_ws.expect("camera_source", timeout=10))["source"] == "browser", ending
            await wait_for(lambda: red_band(customer.video(0).latest, FULL), timeout=10)
            assert not server.app.state.doors.sessions


async def test_a_webrtcbin_viewer_hears_and_sees_the_host_a_whip_client_drives(tmp_path):
    """GStreamer at both ends: whip-client as the studio (the operator's voice) and a webrtcbin
    viewer of the host's program, which decodes the avatar's picture and that voice."""
    if reason := gstreamer.missing_for_whip("vp8enc", "opusenc") or gstreamer.missing_for_viewer(
        "avdec_h264", "opusdec", "rtph264depay"
    ):
        pytest.skip(reason)
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        studio = gstreamer.whip_client(
            server.url + "/whip/studio",
            server.token("olga", role="operator"),
            tmp_path,
            video=gstreamer.video_pipeline("smpte", "VP8"),
            audio=gstreamer.audio_pipeline(330),
        )
        watching = gstreamer.whep_viewer(server.url + "/whep/host", tmp_path)
        async with studio as whip, watching as viewer:
            try:
                await wait_for(lambda: host.studio is not None and host.studio.connectionState == "connected")
                posted = await viewer.expect("posted", timeout=15)
                frame = await viewer.expect("frame", timeout=15, after=lambda words: int(words[1]) >= 30)
                await viewer.expect("audio", timeout=10)  # the studio's Opus, relayed as it came
            except AssertionError as failed:
                said = f"the viewer said:\n{viewer.output()}\nwhip-client said:\n{whip.output()}"
                raise AssertionError(f"{failed}\n{said}") from None
            assert posted[1].startswith("/whep/host/")
            _, _, size, pixel = frame
            assert size == "1280x720"  # the avatar's own size, decoded by GStreamer's H.264 decoder
            r, _g, b = (int(value) for value in pixel.split(","))
            assert b > 60 and b > r + 20, pixel  # Aurora's deep blue backdrop, not black or grey
            assert (await viewer.stop(signal.SIGINT)) == 0, viewer.output()
            assert "deleted 200" in viewer.output()  # the viewer's own DELETE
            assert [s.path for s in server.app.state.doors.sessions.values()] == ["/whip/studio"]
            await whip.stop(signal.SIGINT)
        await wait_for(lambda: not server.app.state.doors.sessions, timeout=5)
