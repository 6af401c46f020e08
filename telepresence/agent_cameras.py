"""Agents' cameras from WHIP: an agent's encoder (OBS, GStreamer, a hardware encoder) instead of
their browser's camera, in every call they are in, wherever the call's room lives.

The WHIP publisher's peer lives here, in the control process, with the agent's sockets; the
calls' rooms may live in media worker processes. Each room gets the stream on a loopback
peer of its own (a "hop"): its video the publisher's encoded frames as they came
(media.encoded_fanout: never decoded here, one PLI upstream whatever the number of rooms),
its audio the publisher's Opus packets (media.voice_fanout). The room answers that peer like
a browser's (media.room_camera) and shows it instead of the browser's camera until it is
released, when the browser's camera comes back. The agent's console is told
(``camera_source``: ``whip`` or ``browser``).

A call that starts while the agent publishes gets a hop as soon as its room exists
(:meth:`AgentCameras.room_ready`, from MediaControl); a call that ends drops its hop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from media import aiortc_internals as internals
from media.answer import MediaError, close_peer
from media.encoded_fanout import EncodedFanout
from media.peers import negotiated_codec
from media.voice_fanout import VoiceFanout
from telepresence.calls import Call
from telepresence.room_handle import RoomHandle

logger = logging.getLogger(__name__)

SendAgent = Callable[[str, dict[str, Any]], None]


class AgentFeed:
    """One agent's WHIP stream and its hops to the rooms of the agent's calls."""

    def __init__(self, agent: str, camera: RTCRtpTransceiver, mic: RTCRtpTransceiver | None) -> None:
        self.agent = agent
        self.codec = negotiated_codec(camera) or ""
        self.video = EncodedFanout(camera.receiver, self.codec, label=f"{agent} whip camera")
        self.voice: VoiceFanout | None = None
        if mic is not None:
            self.voice = VoiceFanout(f"{agent} whip voice")
            self.voice.attach(mic.receiver)  # forwarded, never decoded here
        self.hops: dict[str, tuple[RTCPeerConnection, RoomHandle]] = {}
        self.closed = False

    async def join(self, call_id: str, room: RoomHandle) -> None:
        """Relay the stream to ``room`` (the room of call ``call_id``), once."""
        if self.closed or call_id in self.hops:
            return
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # loopback: host candidates only
        self.hops[call_id] = (pc, room)
        try:
            video = pc.addTransceiver("video", direction="sendonly")
            video.setCodecPreferences(_only(self.codec))  # the room takes it as it comes, no transcoding
            video.sender.replaceTrack(self.video.output(video.sender))
            if self.voice is not None:
                pc.addTransceiver(self.voice.output(), direction="sendonly")
            internals.guard_received_datagrams(pc)  # its port is open to anyone from gathering on
            await pc.setLocalDescription(await pc.createOffer())
            answer = await room.answer_camera(pc.localDescription.sdp)
            if self.closed or self.hops.get(call_id, (None,))[0] is not pc:
                await room.release_camera()  # the stream or the call went while the room answered
                raise MediaError("gone", "the WHIP session or the call ended meanwhile")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            logger.info("%s: %s's WHIP camera relayed to the call", call_id, self.agent)
        except Exception as exc:
            if self.hops.get(call_id, (None,))[0] is pc:
                del self.hops[call_id]
            await _close_tracks_and_peer(pc)
            if not isinstance(exc, MediaError):
                logger.exception("%s: relaying %s's WHIP camera failed", call_id, self.agent)
            else:
                logger.info("%s: the room refused %s's WHIP camera: %s", call_id, self.agent, exc.message)

    async def leave(self, call_id: str, *, give_back: bool) -> None:
        """Drop the hop to ``call_id``'s room; ``give_back``: the room shows the browser's camera again."""
        pc, room = self.hops.pop(call_id, (None, None))
        if pc is None:
            return
        if give_back and room is not None:
            try:
                await room.release_camera()
            except MediaError as exc:  # the call is ending, or its worker went
                logger.info("%s: giving the browser's camera back: %s", call_id, exc.message)
        await _close_tracks_and_peer(pc)

    async def close(self) -> None:
        """Every room gets the browser's camera back; the stream is let go."""
        self.closed = True
        for call_id in list(self.hops):
            await self.leave(call_id, give_back=True)
        await self.video.close()
        if self.voice is not None:
            self.voice.close()


class AgentCameras:
    """Every agent's WHIP camera now (one per agent: a newer one replaces it)."""

    def __init__(self, *, send_agent: SendAgent, calls: Callable[[], list[Call]]) -> None:
        self.feeds: dict[str, AgentFeed] = {}
        self._send_agent = send_agent
        self._calls = calls
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, agent: str, camera: RTCRtpTransceiver, mic: RTCRtpTransceiver | None) -> AgentFeed:
        """``camera`` (and ``mic``) are ``agent``'s from now on, in every call of theirs."""
        # A loop: another session of the agent's may have started while the previous closed.
        while (previous := self.feeds.pop(agent, None)) is not None:
            await previous.close()
        feed = self.feeds[agent] = AgentFeed(agent, camera, mic)
        for call in self._calls():
            if call.agent_id == agent and call.active and call.room is not None:
                self._spawn(feed.join(call.id, call.room), f"{call.id} whip camera")
        self._send_agent(agent, {"type": "camera_source", "source": "whip"})
        return feed

    def publishing(self, agent: str) -> bool:
        """Whether ``agent``'s camera comes from WHIP now (a console opened meanwhile is told so)."""
        return agent in self.feeds

    async def stop(self, feed: AgentFeed) -> None:
        """``feed`` ends (its WHIP session did): the agent's calls show their browser's camera again."""
        if self.feeds.get(feed.agent) is feed:
            del self.feeds[feed.agent]
            self._send_agent(feed.agent, {"type": "camera_source", "source": "browser"})
        await feed.close()

    def room_ready(self, call: Call) -> None:
        """``call`` has a room (an offer was answered): it shows its agent's WHIP camera, if any."""
        feed = self.feeds.get(call.agent_id)
        if feed is not None and call.active and call.room is not None and call.id not in feed.hops:
            self._spawn(feed.join(call.id, call.room), f"{call.id} whip camera")

    def call_closed(self, call_id: str) -> None:
        """The call's room is closing: its hop goes (nothing to give back)."""
        for feed in self.feeds.values():
            if call_id in feed.hops:
                self._spawn(feed.leave(call_id, give_back=False), f"{call_id} whip camera gone")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """End every feed and wait for the hops being made or dropped."""
        for feed in list(self.feeds.values()):
            await self.stop(feed)
        if self._tasks:
            await asyncio.wait(set(self._tasks))


def _only(codec: str) -> list[Any]:
    wanted = {f"video/{codec.lower()}", "video/rtx"}
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]


async def _close_tracks_and_peer(pc: RTCPeerConnection) -> None:
    for transceiver in pc.getTransceivers():
        if transceiver.sender.track is not None:
            transceiver.sender.track.stop()
    await close_peer(pc)
