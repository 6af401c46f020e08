"""WHEP out (RFC 9725): the live avatar host's program, encoded once for any number of viewers."""

from __future__ import annotations

from media.browser import ToneTrack
from tests.calls.test_avatar_host import FaceCamera
from tests.calls.test_media_calls import media_server, wait_for
from tests.doors.whip import WhipClient, only_codecs, publisher, start_host, stop_host, viewer


async def test_a_viewer_receives_the_hosts_picture_and_the_studios_voice(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        studio = WhipClient(server.url, "/whip/studio", server.token("olga", role="operator"))
        publishing = publisher(camera=FaceCamera(), mic=ToneTrack(330))
        watching = viewer()
        async with publishing, watching:
            await publishing.negotiate(studio.answer)
            await wait_for(lambda: host.studio is not None and host.studio.connectionState == "connected")
            await watching.negotiate(WhipClient(server.url, "/whep/host").answer)
            frame = await watching.video(0).wait(15)
            assert (frame.width, frame.height) == (1280, 720)  # the avatar's own size
            await wait_for(lambda: watching.video(0).count > 30)
            assert watching.video(0).darkest_mean > 10  # the avatar's picture, never a black frame
            await wait_for(lambda: watching.audio.loudness() > 500)  # the operator's voice, relayed
            await wait_for(lambda: host.face.tracking, timeout=20)  # the WHIP camera drives the face


async def test_two_viewers_share_one_encode(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        first, second = viewer(audio=False), viewer()
        async with first, second:
            await first.negotiate(WhipClient(server.url, "/whep/host").answer)
            await second.negotiate(WhipClient(server.url, "/whep/host").answer)
            await wait_for(lambda: first.video(0).count > 20 and second.video(0).count > 20)
            program = host.program()
            assert list(program.encoders) == ["H264"]
            pictures, encodes = await _while_both_watch(program, first, second)
            assert pictures >= 15 and abs(encodes - pictures) <= 1  # one encode a picture (one under way)
        # Both gone: the program stops reading the avatar (which would render for nobody).
        await wait_for(lambda: not server.app.state.doors.sessions)
        assert not program.watched and program.composite.readyState == "ended"


async def test_viewers_of_two_codecs_get_one_encode_each(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        h264, vp8 = viewer(), viewer()
        async with h264, vp8:
            await h264.negotiate(WhipClient(server.url, "/whep/host").answer)
            only_codecs(vp8, "VP8")
            await vp8.negotiate(WhipClient(server.url, "/whep/host").answer)
            await wait_for(lambda: h264.video(0).count > 10 and vp8.video(0).count > 10)
            assert vp8.codec(0) == "VP8" and h264.codec(0) == "H264"
            program = host.program()
            assert sorted(program.encoders) == ["H264", "VP8"]
            pictures, encodes = await _while_both_watch(program, h264, vp8)
            assert pictures >= 15 and abs(encodes - 2 * pictures) <= 2  # each picture in both codecs


async def test_viewers_go_when_the_host_stops(tmp_path):
    async with media_server(tmp_path) as server:
        await start_host(server)
        watching = viewer()
        async with watching:
            await watching.negotiate(WhipClient(server.url, "/whep/host").answer)
            await watching.video(0).wait(15)
            doors = server.app.state.doors
            assert len(doors.sessions) == 1
            await stop_host(server)
            await wait_for(lambda: not doors.sessions, timeout=5)
            await wait_for(lambda: watching.pc.connectionState in ("closed", "failed"), timeout=10)


async def _while_both_watch(program, one, other) -> tuple[int, int]:
    """Pictures composed and frames encoded while both viewers decode 20 more frames."""
    composed, encodes = program.composed, program.encodes
    seen = one.video(0).count, other.video(0).count
    await wait_for(lambda: one.video(0).count > seen[0] + 20 and other.video(0).count > seen[1] + 20)
    return program.composed - composed, program.encodes - encodes
