"""The ``host_janus_rtp`` setting: where a Janus Streaming-plugin mountpoint listens.

Pure (no I/O, no media imports), so reading the settings does not load the media stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JanusTarget:
    """Where a mountpoint listens: one host, a port for video and one for audio."""

    host: str
    video_port: int
    audio_port: int

    @classmethod
    def parse(cls, text: str) -> JanusTarget:
        """``HOST:VIDEO_PORT:AUDIO_PORT`` (an IPv6 host in brackets); ValueError says what is wrong."""
        parts = text.strip().rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{text!r} is not HOST:VIDEO_PORT:AUDIO_PORT")
        host = parts[0].removeprefix("[").removesuffix("]")
        if not host or any(c.isspace() or c in "/[]" for c in host):
            raise ValueError(f"{text!r}: {parts[0]!r} is not a host name or address")
        ports = []
        for name, port in zip(("VIDEO_PORT", "AUDIO_PORT"), parts[1:], strict=True):
            if not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{text!r}: {name} {port!r} is not a port (1-65535)")
            ports.append(int(port))
        if ports[0] == ports[1]:
            raise ValueError(f"{text!r}: video and audio need ports of their own")
        return cls(host, ports[0], ports[1])
