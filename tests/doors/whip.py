"""A WHIP/WHEP client as RFC 9725 has it, for aiortc peers in tests: POST the offer, keep the
session's Location, DELETE it; and the peers a WHIP publisher and a WHEP viewer offer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack

from media.browser import BrowserPeer, ToneTrack
from media.sources import TestCardTrack
from tests.conftest import LiveServer


class DoorRefused(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code}: {response.text.strip()}")
        self.response = response
        self.status = response.status_code


class WhipClient:
    """One session through a WHIP or WHEP endpoint (``url``), with an optional bearer token."""

    def __init__(self, base_url: str, path: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.path = path
        self.token = token
        self.location: str | None = None
        self.response: httpx.Response | None = None

    def headers(self, **more: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**auth, **more}

    async def answer(self, role: str, sdp: str) -> str:
        """BrowserPeer.negotiate's answer function: the offer POSTed, the answer returned."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=20) as http:
            response = await http.post(
                self.path, content=sdp, headers=self.headers(**{"Content-Type": "application/sdp"})
            )
        self.response = response
        if response.status_code != 201:
            raise DoorRefused(response)
        self.location = response.headers["location"]
        return response.text

    async def delete(self) -> int:
        assert self.location is not None
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            return (await http.delete(self.location, headers=self.headers())).status_code


def publisher(camera: MediaStreamTrack | None = None, mic: MediaStreamTrack | None = None) -> BrowserPeer:
    """A WHIP publisher's offer: audio and video, both sendonly (OBS and GStreamer's order)."""
    camera = camera or TestCardTrack(640, 360, fps=15, label="")
    return BrowserPeer("whip", [("audio", mic or ToneTrack(330), "sendonly"), ("video", camera, "sendonly")])


def viewer(*, audio: bool = True, video: bool = True) -> BrowserPeer:
    """A WHEP viewer's offer: receive-only audio and video."""
    sections = [("audio", None, "recvonly")] * audio + [("video", None, "recvonly")] * video
    return BrowserPeer("whep", sections)  # type: ignore[arg-type]


async def start_host(server: LiveServer, look: str = "aurora") -> Any:
    """The live avatar host, started by an operator over the HTTP control API."""
    operator = {"Authorization": f"Bearer {server.token('olga', role='operator')}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/host", headers=operator, json={"type": "host_start", "spec": look})
    assert response.status_code == 200, response.text
    return server.switchboard.host_control.desk.host


async def stop_host(server: LiveServer) -> None:
    operator = {"Authorization": f"Bearer {server.token('olga', role='operator')}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/host", headers=operator, json={"type": "host_stop"})
    assert response.status_code == 200, response.text


@contextlib.asynccontextmanager
async def http_client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        yield http


def only_codecs(peer: BrowserPeer, *names: str) -> None:
    """Offer only these video codecs (and their retransmission), as a client that lacks the rest."""
    wanted = {f"video/{name.lower()}" for name in names} | {"video/rtx"}
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)
