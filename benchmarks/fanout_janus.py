"""Debian's Janus, run with a generated config, and aiortc viewers that watch through its own API.

:class:`JanusProcess` writes a config directory with only what a fan-out needs (the HTTP
transport on a loopback port, the Streaming plugin with ONE RTP mountpoint, ICE on loopback
only), starts ``/usr/bin/janus`` on it and stops it. :class:`JanusViewer` is Janus's HTTP API
as a web page's janus.js speaks it: create a session, attach ``janus.plugin.streaming``,
``watch`` the mountpoint, answer Janus's JSEP offer with an aiortc peer, ``start``.

Used by tests/doors/test_janus_fanout.py and the fan-out suite (benchmarks/fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.browser import AudioSink, VideoSink
from media.receive import enable_low_latency_receive

JANUS = shutil.which("janus") or "/usr/bin/janus"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/janus")
MOUNTPOINT_ID = 1
START_TIMEOUT_S = 15.0


def janus_installed() -> bool:
    return os.access(JANUS, os.X_OK) and (LIBDIR / "plugins" / "libjanus_streaming.so").exists()


def free_udp_port() -> int:
    """A UDP port free on loopback now, for a mountpoint to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mountpoint_config(video_port: int, audio_port: int, video_codec: str = "H264") -> str:
    """The Streaming plugin's mountpoint for the server's ``host_janus_rtp`` push (the README's)."""
    video = (
        '\tvideocodec = "h264"\n\tvideofmtp = "profile-level-id=42e01f;packetization-mode=1"\n'
        if video_codec == "H264"
        else '\tvideocodec = "vp8"\n'
    )
    return (
        "avatar-host: {\n"
        '\ttype = "rtp"\n'
        f"\tid = {MOUNTPOINT_ID}\n"
        '\tdescription = "The live avatar host"\n'
        "\taudio = true\n"
        "\tvideo = true\n"
        f"\taudioport = {audio_port}\n"
        "\taudiopt = 111\n"
        '\taudiocodec = "opus"\n'
        f"\tvideoport = {video_port}\n"
        "\tvideopt = 96\n"
        f"{video}"
        "}\n"
    )


@dataclass
class JanusProcess:
    """``janus`` on a generated config in ``workdir``; HTTP API at :attr:`url`."""

    workdir: Path
    http_port: int
    video_port: int
    audio_port: int
    video_codec: str = "H264"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    def write_config(self) -> Path:
        configs = self.workdir / "etc"
        for folder in ("etc", "plugins", "transports", "events", "loggers"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        # Only the two shared objects needed: Janus loads every library in its folders.
        for folder, name in (("plugins", "libjanus_streaming.so"), ("transports", "libjanus_http.so")):
            link = self.workdir / folder / name
            if not link.exists():
                link.symlink_to(LIBDIR / folder / name)
        (configs / "janus.jcfg").write_text(
            "general: {\n"
            f'\tconfigs_folder = "{configs}"\n'
            f'\tplugins_folder = "{self.workdir / "plugins"}"\n'
            f'\ttransports_folder = "{self.workdir / "transports"}"\n'
            f'\tevents_folder = "{self.workdir / "events"}"\n'
            f'\tloggers_folder = "{self.workdir / "loggers"}"\n'
            "\tdebug_level = 3\n"
            "\tsession_timeout = 0\n"  # the viewers poll no events while they watch
            f'\tserver_name = "fanout-{secrets.token_hex(3)}"\n'
            "}\n"
            "media: {\n\tipv6 = false\n}\n"
            # ICE on loopback only: the test's traffic never leaves the machine.
            'nat: {\n\tnice_debug = false\n\tignore_mdns = true\n\tice_enforce_list = "127.0.0.1"\n}\n'
            "plugins: {\n}\ntransports: {\n}\nloggers: {\n}\nevents: {\n\tbroadcast = false\n}\n"
        )
        (configs / "janus.transport.http.jcfg").write_text(
            "general: {\n"
            '\tjson = "plain"\n\tbase_path = "/janus"\n\thttp = true\n'
            f'\tport = {self.http_port}\n\tip = "127.0.0.1"\n\thttps = false\n'
            "}\nadmin: {\n\tadmin_http = false\n}\n"
        )
        (configs / "janus.plugin.streaming.jcfg").write_text(
            "general: {\n}\n" + mountpoint_config(self.video_port, self.audio_port, self.video_codec)
        )
        return configs

    def _spawn(self) -> subprocess.Popen[bytes]:
        configs = self.write_config()
        with open(self.workdir / "janus.log", "wb") as log:
            return subprocess.Popen(
                [JANUS, "-F", str(configs), "-C", str(configs / "janus.jcfg")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the driver, which stops it
            )

    async def start(self) -> None:
        self.process = self._spawn()  # a fork and exec: quick, whatever ruff's ASYNC220 fears
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"janus exited ({self.process.returncode}): {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/info")).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"janus did not answer in {START_TIMEOUT_S:g} s: {self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "janus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # Janus's own clean stop
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    async def __aenter__(self) -> JanusProcess:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)  # up to 10 s of waiting, off the loop a server may share


class JanusError(Exception):
    pass


class SinkPeer:
    """A receiving aiortc peer (loopback, no ICE servers) whose tracks are read into sinks
    (anything with ``put(frame)``) by tasks it owns; ``low_latency``: frames complete on the
    marker bit (media.receive), as the server's own receivers."""

    def __init__(self, *, low_latency: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if low_latency:
            enable_low_latency_receive(self.pc)
        self._tasks: set[asyncio.Task[None]] = set()

    def read_into(self, track: MediaStreamTrack, sink: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(track, sink), name=f"{track.kind} sink")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, track: MediaStreamTrack, sink: Any) -> None:
        with contextlib.suppress(MediaStreamError):  # the track ended
            while True:
                sink.put(await track.recv())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self.pc.close()


class JanusViewer(SinkPeer):
    """One viewer of a Streaming-plugin mountpoint, through Janus's HTTP API; an aiortc peer."""

    def __init__(self, janus_url: str, mountpoint: int = MOUNTPOINT_ID, video: Any = None) -> None:
        """``video``: what takes each decoded frame (``put(frame)``); a VideoSink by default."""
        super().__init__()
        self.janus_url = janus_url
        self.mountpoint = mountpoint
        self.video = video if video is not None else VideoSink()
        self.audio = AudioSink()
        self._http = httpx.AsyncClient(timeout=30)
        self._session: str | None = None
        self._handle: str | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.read_into(track, self.video if track.kind == "video" else self.audio)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": secrets.token_hex(6)}
        reply = (await self._http.post(f"{self.janus_url}{path}", json=body)).json()
        if reply.get("janus") == "error":
            raise JanusError(reply["error"].get("reason", reply))
        return reply

    async def _event(self) -> dict[str, Any]:
        """The handle's next plugin event (Janus's long poll)."""
        while True:
            event = (await self._http.get(f"{self.janus_url}/{self._session}", params={"maxev": 1})).json()
            if event.get("janus") == "event" and str(event.get("sender")) == self._handle:
                error = event.get("plugindata", {}).get("data", {}).get("error")
                if error:
                    raise JanusError(error)
                return event

    async def watch(self) -> None:
        """Session, handle, ``watch``: Janus's offer answered by this peer, then ``start``."""
        self._session = str((await self._post("", {"janus": "create"}))["data"]["id"])
        attach = {"janus": "attach", "plugin": "janus.plugin.streaming"}
        attached = await self._post(f"/{self._session}", attach)
        self._handle = str(attached["data"]["id"])
        where = f"/{self._session}/{self._handle}"
        await self._post(where, {"janus": "message", "body": {"request": "watch", "id": self.mountpoint}})
        event = await self._event()
        while "jsep" not in event:
            event = await self._event()
        await self.pc.setRemoteDescription(RTCSessionDescription(**event["jsep"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        await self._post(where, {"janus": "message", "body": {"request": "start"}, "jsep": answer})

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            with contextlib.suppress(httpx.HTTPError, JanusError, ValueError):
                await self._post(f"/{self._session}", {"janus": "destroy"})
        await self._http.aclose()

    async def __aenter__(self) -> JanusViewer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
