"""WHIP in (RFC 9725) to the live host's studio: an operator's encoder drives the avatar, as the
studio page's camera does; DELETE, a vanished publisher and a studio page taking over end it."""

from __future__ import annotations

import asyncio
import sys

from media.browser import BrowserPeer
from tests.calls.test_avatar_host import FaceCamera, operator_client
from tests.calls.test_media_calls import media_server, signalling, wait_for
from tests.doors.whip import WhipClient, publisher, start_host, viewer


async def test_a_whip_studio_drives_the_face_until_deleted(tmp_path):
    async with media_server(tmp_path) as server:
        host = await start_host(server)
        client = WhipClient(server.url, "/whip/studio", server.token("pia", role="operator"))
        async with publisher(camera=FaceCamera()) as peer:
            await peer.negotiate(client.answer)
            await wait_for(lambda: host.face.tracking, timeout=20)
            assert host.operator == "pia"
            assert await client.delete() == 200
            assert host.studio is None and not server.app.state.doors.sessions
            frames = host.face.frames
            await asyncio.sleep(1)
            assert host.face.frames <= frames + 1  # no longer driven (one inference may finish)


async def test_a_publisher_killed_without_delete_is_timed_out_and_cleaned_up(tmp_path):
    async with media_server(tmp_path, media_door_idle_s=3) as server:
        host = await start_host(server)
        token = server.token("olga", role="operator")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.doors.publisher_process",
            server.url,
            "/whip/studio",
            token,
            stdout=asyncio.subprocess.PIPE,
        )
        watching = viewer()  # a WHEP viewer sends only RTCP and consent checks: it is kept
        try:
            await watching.negotiate(WhipClient(server.url, "/whep/host").answer)
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line.strip() == b"connected"
            doors = server.app.state.doors
            studio = host.studio
            assert studio is not None and len(doors.sessions) == 2
            await asyncio.sleep(4)  # longer than the idle limit: live peers are kept
            assert len(doors.sessions) == 2 and host.studio is studio
            process.kill()
            await process.wait()
            await wait_for(
                lambda: len(doors.sessions) == 1 and studio.connectionState == "closed", timeout=10
            )
            assert host.studio is None
            assert next(iter(doors.sessions.values())).path == "/whep/host"
        finally:
            await watching.close()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_the_studio_page_takes_over_from_a_whip_publisher(tmp_path):
    async with media_server(tmp_path) as server:
        olga = await operator_client(server)
        host = await start_host(server)
        client = WhipClient(server.url, "/whip/studio", server.token("pia", role="operator"))
        async with publisher(camera=FaceCamera()) as whip:
            await whip.negotiate(client.answer)
            await wait_for(lambda: host.studio is not None)
            published = host.studio
            page = BrowserPeer.operator(camera=FaceCamera())
            async with page:
                await page.negotiate(signalling(olga))
                await page.video(0).wait(15)  # the avatar's preview
                await wait_for(lambda: not server.app.state.doors.sessions, timeout=5)
                assert host.studio is not None and host.studio is not published
                assert published.connectionState == "closed"
                assert await client.delete() == 404
