"""Test helpers for supervisors: a peer laid out like the supervisor page's, and an ear for tones."""

from __future__ import annotations

from collections import Counter

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from media.browser import AudioSink, BrowserPeer

BIN_HZ = 50  # a 20 ms frame's FFT resolution at 48 kHz


class ToneEar(AudioSink):
    """An AudioSink that also notes which tones each frame holds (peaks of its spectrum)."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: Counter[int] = Counter()  # tone (Hz, to BIN_HZ) -> frames it was in

    def put(self, frame: av.AudioFrame) -> None:
        super().put(frame)
        pcm = frame.to_ndarray().astype(np.float64)
        channels = len(frame.layout.channels)
        mono = pcm.reshape(-1, channels)[:, 0] if frame.format.is_packed else pcm[0]
        if mono.size < 480 or np.sqrt(np.mean(mono**2)) < 300:
            return
        spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
        hz = np.fft.rfftfreq(mono.size, 1 / frame.sample_rate)
        for peak in np.flatnonzero(spectrum > 0.3 * spectrum.max()):
            self.heard[int(round(hz[peak] / BIN_HZ) * BIN_HZ)] += 1

    def hears(self, tone: int, frames: int = 5) -> bool:
        return self.heard[tone] >= frames


def supervisor_peer(whisper: MediaStreamTrack | None = None) -> BrowserPeer:
    """The supervisor page's offer: video, the agent's voice (sending the whisper, if any), the
    customer's voice."""
    peer = BrowserPeer(
        "supervisor",
        [
            ("video", None, "recvonly"),
            ("audio", whisper, "sendrecv" if whisper is not None else "recvonly"),
            ("audio", None, "recvonly"),
        ],
    )
    peer.audio = ToneEar()
    return peer


def with_ear(peer: BrowserPeer) -> BrowserPeer:
    peer.audio = ToneEar()
    return peer
