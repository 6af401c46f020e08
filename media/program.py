"""The customer's picture, encoded once for everyone who watches it.

The customer and the agent's preview see the same picture: the composite, or the agent's
camera as it came (media.passthrough). :class:`Program` makes that picture's encoded
frames ONCE and cuts each into RTP payloads ONCE (media.packetized) for every viewer's
sender, which only stamps its own headers on them and sends (media.aiortc_internals'
stamped RTP loop). One encoder, one compose: the preview no longer costs a second encode,
and while the camera is forwarded nothing is composed or encoded. A reader without a sender
(media.rtp_push) gets the encoded ``av.Packet`` itself.

Every source switch lands on a keyframe: the camera's (asked for with a PLI) when
forwarding starts, a forced one of the encoder when the composite resumes, so a viewer's
decoder is never handed a frame whose references it does not have. A viewer that falls
behind drops what it has queued and waits for the next keyframe (asking for one) rather
than queueing; a viewer's keyframe request (PLI/FIR from its browser) goes to whichever
source is live. The encoder's bitrate follows what the customer's browser says it can
receive (the agent's preview does not steer); while the camera is forwarded, that estimate
caps the agent's sender (REMB) once the customer is also losing packets, and the cap rises in
steps, never above the estimate (media.camera_cap).

While the picture IS the agent's camera as it came, a ``mirror`` viewer (the agent's preview)
is held: its browser shows the camera itself (``on_mirror(held)`` says when) rather than decode
it a second time, and it resumes on the composite's keyframe.

Each viewer's queue and what its browser says back live in media.program_viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import aiortc_internals as internals
from media.bitrate import Bitrate, SentRate
from media.camera_cap import CameraCap
from media.encoded import (
    KEYFRAME_ASK_S,
    UNCAPPED_BPS,
    VIDEO_TIME_BASE,
    is_keyframe,
    keyframe_requests_to,
)
from media.packetized import PacketizedFrame, Packetizer, PayloadHandover
from media.passthrough import STALL_S, CameraPassthrough
from media.peers import FastH264Encoder, SafeVp8Encoder
from media.program_viewer import ProgramViewer, steering_estimate
from media.receipt import LatencyReceipt
from media.repair import KEYFRAME_RETRY_MAX_S

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5  # the customer's figures for the camera's cap (media.camera_cap), read this often
PAUSE_AFTER_ERROR_S = 0.1  # a source that keeps failing is not retried in a tight loop


class _WholeFrameVp8(SafeVp8Encoder):
    """Our VP8 encoder, returning each frame's bitstream whole (the viewers' senders packetise)."""

    @classmethod
    def _packetize(cls, buffer: bytes, picture_id: int) -> list[bytes]:
        return [buffer] if buffer else []


class _WholeFrameH264(FastH264Encoder):
    """Our H.264 encoder, returning each frame's NAL units as one Annex B bitstream."""

    @classmethod
    def _packetize(cls, packages: Iterable[bytes]) -> list[bytes]:
        data = b"".join(b"\x00\x00\x00\x01" + nal for nal in packages)
        return [data] if data else []


def _frame_encoder(codec: str, bitrate: Bitrate | None, receipt: LatencyReceipt | None):
    encoder = _WholeFrameVp8(bitrate) if codec == "VP8" else _WholeFrameH264(bitrate)
    encoder.receipt = receipt
    return encoder


class Program:
    """One encoded stream of the customer's picture for any number of viewers (senders).

    Viewers normally share a codec (the server answers every browser with its own first);
    one that negotiated another gets its own encode of the same composed frame.

    Args:
        composite: the compositor's track (read only here, and only while it is the source).
        passthrough: the agent camera's frames, forwarded while the composite would be them
            and every viewer takes the camera's codec.
        bitrate: the encoders' range; receipt: where each encode's time is recorded.
    """

    def __init__(
        self,
        composite: MediaStreamTrack,
        *,
        passthrough: CameraPassthrough | None = None,
        bitrate: Bitrate | None = None,
        receipt: LatencyReceipt | None = None,
        label: str = "",
    ) -> None:
        self.composite = composite
        self.passthrough = passthrough
        self.label = label
        self.bitrate = bitrate
        self.receipt = receipt
        self.encoders: dict[str, _WholeFrameVp8 | _WholeFrameH264] = {}
        self.packetizers: dict[str, Packetizer] = {}  # one per codec, for every viewer's sender
        self.composed = 0  # pictures taken from the composite
        self.encodes = 0  # frames encoded (once per codec, whatever the number of viewers)
        self.forwarding = False  # the agent's camera is the source
        self._viewers: weakref.WeakSet[ProgramViewer] = weakref.WeakSet()
        self._keyframe_due = True
        self._asked = 0.0
        self._ask_every = KEYFRAME_ASK_S  # doubles while asks follow each other (media.repair's back-off)
        self.camera_cap = CameraCap((bitrate or Bitrate()).max)
        self._forwarded_rate = SentRate()
        self._checked_at = 0.0
        self._pump: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Not while the camera comes from another peer (WHIP): the browser has no picture of it.
        self.may_hold_mirrors: Callable[[], bool] = lambda: True
        self.on_mirror: Callable[[bool], None] | None = None  # mirror viewers held (True) or fed
        self.mirrors_held = False

    # ------------------------------------------------------------- viewers

    def viewer(
        self, sender: RTCRtpSender | None, codec: str, *, steers: bool = True, mirror: bool = False
    ) -> MediaStreamTrack:
        """A track for ``sender`` (negotiated ``codec``: "VP8" or "H264"): this program's packets;
        the sender's keyframe requests come here. A viewer that ``steers`` (the customer, not the
        agent's preview) sets the bitrate with what its browser says it can receive. A ``mirror``
        (the agent's preview) is held while the agent's camera is forwarded. No sender: a reader
        of the packets of its own (media.rtp_push), which never steers."""
        if codec not in ("VP8", "H264"):
            raise ValueError(f"no encoder for video codec {codec!r}")
        track = ProgramViewer(self, sender, codec, steers, mirror)
        self._viewers.add(track)
        if sender is not None:
            keyframe_requests_to(sender, self.request_keyframe)
            # The sender packetises nothing (the pump did, once): it stamps and sends.
            internals.set_encoder(sender, PayloadHandover(self.bitrate))
            internals.send_stamped_payloads(sender)
        if mirror and self.mirrors_held:
            self._tell_mirror(True)  # a new preview (a reloaded console): it shows its own camera too
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run(), name=f"{self.label} program")
        self._wake.set()
        return track

    @property
    def watched(self) -> int:
        """Viewers whose track is live."""
        return sum(1 for v in self._viewers if v.readyState == "live")

    @property
    def keyframe_due(self) -> bool:
        """A keyframe is already asked of the live source (a viewer need not ask again)."""
        return self._keyframe_due

    def request_keyframe(self) -> None:
        """The next frame from the live source is a keyframe (forwarding: the agent's browser is asked)."""
        self._keyframe_due = True
        if not self.forwarding:
            self._asked = 0.0  # ask at once (forwarding, asks back off: _forwarding_chores)

    async def close(self) -> None:
        """Stop the pump and end every viewer's track; idempotent."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for track in list(self._viewers):
            track.stop()
        self.forwarding = False
        if self.passthrough is not None:
            self.passthrough.wanted = False

    # ---------------------------------------------------------------- pump

    async def _run(self) -> None:
        while True:
            # Steering viewers (the customer) first: their senders wake and send first, and the
            # agent's preview waits its turn (by a set's order, it went first in half the calls).
            viewers = sorted((v for v in self._viewers if v.readyState == "live"), key=lambda v: not v.steers)
            if not viewers:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                packets = await self._next_packets(viewers)
            except MediaStreamError:
                for viewer in viewers:
                    viewer.stop()
                return
            except Exception:
                # One bad frame (an encoder error, a source gone mid-read) must not end the
                # picture for good: start again from a keyframe.
                logger.exception("%s: a frame failed; going on from a keyframe", self.label)
                self.request_keyframe()
                await asyncio.sleep(PAUSE_AFTER_ERROR_S)
                continue
            self._hold_mirrors(self.forwarding and self.may_hold_mirrors())
            for codec, packet in packets.items():
                taking = [v for v in viewers if v.codec == codec and not (v.mirror and self.mirrors_held)]
                try:
                    self._offer(codec, packet, taking)
                except Exception:
                    # A frame that cannot be cut into payloads (a forwarded camera's malformed
                    # frame: aiortc's H.264 packetizer raises on an empty NAL unit) is skipped;
                    # the viewers go on from the next keyframe.
                    logger.exception("%s: a %s frame could not be packetized; skipped", self.label, codec)
                    for viewer in taking:
                        viewer.queue.restart()
                    self.request_keyframe()
            if self.forwarding:
                # A repaired loss releases the camera's held frames at once: let the viewers'
                # senders take each before the next, or their 2-frame queues overflow into a
                # keyframe wait.
                await asyncio.sleep(0)

    def _hold_mirrors(self, held: bool) -> None:
        """Hold or feed the mirror viewers; fed again, they start on a keyframe (the composite
        resumes on one; otherwise a viewer waiting for one asks)."""
        if held == self.mirrors_held:
            return
        self.mirrors_held = held
        if not held:
            for viewer in self._viewers:
                if viewer.mirror:
                    viewer.queue.restart()  # what it decodes next must not need what it missed
        self._tell_mirror(held)

    def _tell_mirror(self, held: bool) -> None:
        if self.on_mirror is None:
            return
        try:
            self.on_mirror(held)
        except Exception:  # the owner's word must not end the picture (this runs in the pump)
            logger.exception("%s: telling the preview's owner failed", self.label)

    def _offer(self, codec: str, packet: av.Packet, viewers: list[ProgramViewer]) -> None:
        """``packet`` to each viewer: cut into payloads once for all those with a sender."""
        frame: PacketizedFrame | None = None
        for viewer in viewers:
            if not viewer.has_sender:
                viewer.offer(packet)
                continue
            if frame is None:
                packetizer = self.packetizers.get(codec)
                if packetizer is None:
                    packetizer = self.packetizers[codec] = Packetizer(codec)
                frame = packetizer(packet)
            viewer.offer(frame)

    async def _next_packets(self, viewers: list[ProgramViewer]) -> dict[str, av.Packet]:
        """The live source's next frame, encoded once for each codec the viewers take."""
        p = self.passthrough
        if self.forwarding:
            if self._may_forward(viewers):
                await self._forwarding_chores(viewers)
                packet = await p.next_frame(STALL_S)
                if packet is not None:
                    if packet.is_keyframe:  # whatever asked for one has it
                        self._keyframe_due = p.keyframe_needed = False
                    p.forwarded += 1
                    self._forwarded_rate.add(packet.size, time.monotonic())
                    return {p.codec: packet}
                if p.fresh():
                    return {}  # a loss being repaired: the composite's camera picture is older
            await self._stop_forwarding()
        elif self._may_forward(viewers):
            assert p is not None
            p.wanted = True
            keyframe = p.take_keyframe()
            if keyframe is not None:
                self.forwarding = True
                p.switches += 1
                p.pause_decoding()  # nothing composes the camera while it is forwarded
                self._keyframe_due = False
                logger.info("%s: forwarding the agent's camera as it came", self.label)
                return {p.codec: keyframe}
            if time.monotonic() - self._asked > KEYFRAME_ASK_S:
                self._asked = time.monotonic()
                await p.request_keyframe()
        elif p is not None:
            p.wanted = False
        return await self._encode_composite(viewers)

    def _may_forward(self, viewers: list[ProgramViewer]) -> bool:
        p = self.passthrough
        return p is not None and all(v.codec == p.codec for v in viewers) and p.fresh() and p.eligible()

    async def _encode_composite(self, viewers: list[ProgramViewer]) -> dict[str, av.Packet]:
        frame = await self.composite.recv()
        self.composed += 1
        force, self._keyframe_due = self._keyframe_due, False
        loop = asyncio.get_running_loop()
        packets = {}
        for codec in sorted({v.codec for v in viewers}):
            encoder = self.encoders.get(codec)
            if encoder is None:
                encoder = self.encoders[codec] = _frame_encoder(codec, self.bitrate, self.receipt)
            estimate = steering_estimate([v for v in viewers if v.codec == codec])
            if estimate is not None:
                encoder.target_bitrate = int(estimate)
            payloads, _ = await loop.run_in_executor(None, encoder.encode, frame, force)
            self.encodes += 1
            if payloads:
                packet = av.Packet(payloads[0])
                packet.pts = frame.pts
                packet.time_base = frame.time_base or VIDEO_TIME_BASE
                packet.is_keyframe = is_keyframe(codec, payloads[0])
                packets[codec] = packet
        return packets

    async def _forwarding_chores(self, viewers: list[ProgramViewer]) -> None:
        """Keyframe requests and the viewers' estimate go upstream to the agent's browser."""
        p = self.passthrough
        assert p is not None
        now = time.monotonic()
        if (self._keyframe_due or p.keyframe_needed) and now - self._asked >= self._ask_every:
            # Asked again soon after the last ask: that keyframe did not get through (a congested
            # link loses it in its queue, ~100 KB at 720p), so the next ask waits twice as long.
            soon = now - self._asked < 2 * self._ask_every
            self._ask_every = min(KEYFRAME_RETRY_MAX_S, 2 * self._ask_every) if soon else KEYFRAME_ASK_S
            self._keyframe_due = p.keyframe_needed = False
            self._asked = now
            await p.request_keyframe()
        if now - self._checked_at >= CHECK_EVERY_S:
            self._checked_at = now
            await self._cap_if_congested(viewers, now)

    async def _cap_if_congested(self, viewers: list[ProgramViewer], now: float) -> None:
        """Cap the agent's camera while the customer's link cannot take it (media.camera_cap)."""
        p = self.passthrough
        assert p is not None
        steering = [v for v in viewers if v.steers]
        losses = [loss for loss in [await v.loss() for v in steering] if loss is not None]
        remb = self.camera_cap.update(
            now, steering_estimate(steering), self._forwarded_rate.bps(now), max(losses, default=None)
        )
        if remb is not None:
            await p.cap_upstream(remb)

    async def _stop_forwarding(self) -> None:
        self.forwarding = False
        self._keyframe_due = True  # the composite resumes on a keyframe
        p = self.passthrough
        if p is not None:
            p.wanted = False
            p.resume_decoding()
            await p.request_keyframe()  # the compositor's picture of the camera resumes on it
            if self.camera_cap.cap is not None:
                self.camera_cap.lift()
                await p.cap_upstream(UNCAPPED_BPS)  # the composite needs no cap on the camera
        logger.info("%s: back to the composite", self.label)
