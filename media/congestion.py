"""Transport-wide congestion control feedback from the server's receivers.

Chromium's send-side bandwidth estimator (GoogCC) ramps to several Mbps within seconds
when its receiver reports when each packet arrived (transport-cc feedback). Against
aiortc's receivers, which send only REMB from a slow start, it stays on its loss-based
ramp (+8 % a second from 300 kbps): measured, the agent's camera went out at 320x180 for
the first ~30 s of a call. :class:`FeedbackSender` gives a peer connection what a
browser's receiver does: every packet that carries a transport-wide sequence number is
recorded on arrival, and feedback goes back as often as libwebrtc's receiver sends it
(:func:`media.twcc.feedback_interval_s`: 50 ms at a call's rates, up to 250 ms when little comes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from media import aiortc_internals as internals
from media.twcc import FeedbackRecorder, feedback_interval_s

logger = logging.getLogger(__name__)


class FeedbackSender:
    """Transport-cc feedback for one peer connection's (bundled) transport.

    Start it once the answer is set; :meth:`stop` cancels and awaits its task. Sections
    that negotiated transport-cc stop sending aiortc's REMB, which the browser would take
    as a ceiling on its own estimate.
    """

    def __init__(self, pc: RTCPeerConnection, label: str = "peer") -> None:
        self.label = label
        self.recorder = FeedbackRecorder()
        self.packets_sent = 0
        self._pc = pc
        self._task: asyncio.Task[None] | None = None
        self._media_ssrc = 0
        self._sender_ssrc = 0
        self._bytes = 0  # received since the last feedback: the rate that sets the interval
        self._unwatch: list[Callable[[], None]] = []
        self._stamps: internals.ArrivalStamps | None = None

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Begin if any section negotiated transport-cc; False (and nothing started) if none did."""
        sections = [t for t in self._pc.getTransceivers() if internals.negotiated_transport_cc(t)]
        transport = _transport(sections)
        if transport is None:
            return False
        for transceiver in sections:
            internals.stop_remb(transceiver.receiver)
        self._sender_ssrc = internals.ssrc(sections[0].sender)
        extension_id = internals.header_extension_id(sections[0], internals.TRANSPORT_CC_URI)
        if extension_id is not None:
            self._stamps = internals.ArrivalStamps(extension_id)
            self._unwatch.append(internals.stamp_arrivals(transport, self._stamps))
        self._unwatch.append(internals.watch_received_rtp(transport, self._on_packet))
        self._task = asyncio.get_running_loop().create_task(self._run(transport), name=f"twcc {self.label}")
        return True

    def _on_packet(self, packet: RtpPacket) -> None:
        sequence = packet.extensions.transport_sequence_number
        if sequence is None:
            return
        self._media_ssrc = packet.ssrc
        self._bytes += len(packet.payload) + packet.padding_size
        # The kernel's receive time where the socket is ours (not through TURN): see
        # media.aiortc_internals._arrivals for why the moment Python gets here is not good enough.
        arrival_ms = self._stamps.take(sequence) if self._stamps is not None else None
        self.recorder.record(sequence, arrival_ms if arrival_ms is not None else time.monotonic() * 1000)

    async def _run(self, transport) -> None:
        interval = feedback_interval_s()
        while True:
            await asyncio.sleep(interval)
            interval = feedback_interval_s(self._bytes * 8 / interval)
            self._bytes = 0
            feedback = self.recorder.build(sender_ssrc=self._sender_ssrc, media_ssrc=self._media_ssrc)
            if not feedback:
                continue
            try:
                await internals.send_rtcp(transport, b"".join(feedback))
            except ConnectionError:
                return  # the transport closed under us: the peer is going away
            self.packets_sent += len(feedback)

    async def stop(self) -> None:
        unwatch, self._unwatch = self._unwatch, []
        for undo in unwatch:
            undo()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})


def _transport(sections: list[RTCRtpTransceiver]):
    """The one DTLS transport the sections share (BUNDLE is required, see media.answer)."""
    for transceiver in sections:
        transport = transceiver.receiver.transport
        if transport is not None:
            return transport
    return None
