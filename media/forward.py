"""Outgoing video that forwards what another peer sends: the newest frame of a slot.

A call relays the customer's camera and screen to the agent (voices go through
:mod:`media.voice`). The source may not exist yet when a peer connection is answered
(the other side negotiates later), may go away (a reload) and come back, and must never
be read faster than it arrives or left unread (aiortc queues grow without bound), so
:class:`SlotTrack` sends the newest frame of a :class:`~media.tracks.FrameSlot` (filled
by a :class:`~media.tracks.TrackDrain`) each time it changes: a slow sender skips
frames instead of queueing them.
"""

from __future__ import annotations

import logging

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.tracks import FrameSlot

logger = logging.getLogger(__name__)

# The test peers' microphone format (media.browser): 20 ms frames at 48 kHz, as Opus sends.
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)


class SlotTrack(MediaStreamTrack):
    """A video track that sends a slot's newest frame whenever the slot has a new one."""

    kind = "video"

    def __init__(self, slot: FrameSlot) -> None:
        super().__init__()
        self.slot = slot
        self._version = 0

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not await self.slot.wait_newer(self._version, timeout=0.5):
                continue
            latest = self.slot.latest
            if latest is None:
                continue
            self._version = latest.version
            self.slot.mark_read(latest.version)
            return latest.frame
