"""Fan-out through Janus (``host_janus_rtp``): the server pushes the live host's program as RTP
into Debian's Janus, started here on a generated config, and two aiortc viewers watch it
through Janus's own HTTP API (session, streaming plugin, watch, JSEP answer, start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.fanout_janus import JanusProcess, JanusViewer, free_udp_port, janus_installed
from media.browser import ToneTrack
from tests.calls.test_avatar_host import FaceCamera
from tests.calls.test_media_calls import media_server, wait_for
from tests.conftest import free_port
from tests.doors.whip import WhipClient, publisher, start_host, stop_host

needs_janus = pytest.mark.skipif(
    not janus_installed(), reason="janus is not installed (apt-get install janus)"
)


@needs_janus
async def test_two_viewers_through_janus_see_the_host_and_hear_the_studio(tmp_path):
    video_port, audio_port = free_udp_port(), free_udp_port()
    janus = JanusProcess(tmp_path / "janus", free_port(), video_port, audio_port)
    async with janus, media_server(tmp_path, host_janus_rtp=f"127.0.0.1:{video_port}:{audio_port}") as server:
        host = await start_host(server)
        assert host.janus is not None  # the push runs from the host's start, watched or not
        studio = WhipClient(server.url, "/whip/studio", server.token("olga", role="operator"))
        async with publisher(camera=FaceCamera(), mic=ToneTrack(330)) as publishing:
            await publishing.negotiate(studio.answer)
            await wait_for(lambda: host.studio is not None and host.studio.connectionState == "connected")
            async with JanusViewer(janus.url) as first, JanusViewer(janus.url) as second:
                await first.watch()
                await second.watch()
                for viewer in (first, second):
                    frame = await viewer.video.wait(20)
                    assert (frame.width, frame.height) == (1280, 720)  # the avatar's own size
                await wait_for(lambda: first.video.count > 30 and second.video.count > 30, timeout=20)
                for viewer in (first, second):
                    assert viewer.video.darkest_mean > 10  # the avatar's picture, never a black frame
                    await wait_for(lambda v=viewer: v.audio.loudness() > 500)  # the studio's voice
                program = host.program()
                assert list(program.encoders) == ["H264"]  # the one encode, Janus's viewers or not
                assert host.janus.video.keyframes >= 1 and host.janus.audio.packets > 20
                push = host.janus
                await stop_host(server)
                assert push.video.track.readyState == "ended" and push.audio.track.readyState == "ended"
                assert host.janus is push and push.video._task is None  # stopped with the host


async def test_a_push_that_failed_still_lets_the_host_close_fully(tmp_path):
    video_port, audio_port = free_udp_port(), free_udp_port()  # nobody listens: no Janus needed
    async with media_server(tmp_path, host_janus_rtp=f"127.0.0.1:{video_port}:{audio_port}") as server:
        host = await start_host(server)
        push = host.janus
        assert push is not None

        def broken_source() -> None:
            raise RuntimeError("the program cannot make a keyframe")

        # The push's keyframe ask fails on its next delta frame, which ends its task with the error.
        push.video._ask_keyframe, push.video._keyframe_every_s = broken_source, 0.0
        task = push.video._task
        await wait_for(lambda: task.done(), timeout=20)
        assert isinstance(task.exception(), RuntimeError)
        await stop_host(server)
        assert server.switchboard.host_control.desk.host is None
        assert push.video.track.readyState == "ended" and push.audio.track.readyState == "ended"
        assert push.audio._task is None and push.audio._transport is None  # the audio push stopped too
        assert host._ticker.done() and host.track.readyState == "ended"  # and the host's own parts


def test_a_bad_janus_address_is_refused_at_start_up():
    from telepresence.config import Settings

    for bad in ("janus:5004", "janus:5004:99999", "janus:5004:5004", ":5004:5006"):
        with pytest.raises(ValueError, match="host_janus_rtp"):
            Settings.load(env={}, host_janus_rtp=bad)
    assert Settings.load(env={}, host_janus_rtp="[::1]:5004:5006").host_janus_rtp == "[::1]:5004:5006"


def test_reading_the_settings_does_not_load_the_media_stack():
    # A fresh interpreter: this one has imported aiortc and PyAV already.
    check = (
        "import sys, telepresence.config;"
        "print(sorted({'av', 'aiortc', 'numpy', 'media.program'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
