"""The "audio in, synced video out" contract, and the built-in engine behind it.

:class:`AvatarEngine` is what :class:`~media.avatar.track.AvatarTrack` renders
from. The built-in :class:`BuiltinEngine` is this package's rig, drivers and 2D
renderer; an external avatar engine (a neural talking head, a game engine) can
replace it by implementing the same members (``width``, ``height``, ``push_audio``,
``render``, ``interrupt``): audio goes in with its capture time, and ``render(t)``
returns the picture for time ``t``, lips in step with the audio pushed for that time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import av
import numpy as np

from media.avatar.controller import AvatarController
from media.avatar.renderer import AvatarRenderer
from media.avatar.spec import AvatarSpec
from media.stamp import Stamp


@runtime_checkable
class AvatarEngine(Protocol):
    """Audio in, synced video out.

    ``width`` and ``height`` are the frames' size (even). ``push_audio`` receives PCM
    (an ``av.AudioFrame``, or a numpy array with ``sample_rate``) whose first sample
    was captured at ``t`` (monotonic seconds). ``render(t)`` returns the frame for
    time ``t``: a yuv420p ``av.VideoFrame``, or a contiguous ``(height * 3 // 2, width)``
    yuv420p buffer; it must not block (a few milliseconds at most: it runs on the
    event loop at the track's frame rate). ``interrupt(t)`` stops speech at once.
    """

    width: int
    height: int

    def push_audio(
        self, audio: av.AudioFrame | np.ndarray, t: float, sample_rate: int | None = None
    ) -> None: ...

    def render(self, t: float) -> av.VideoFrame | np.ndarray: ...

    def interrupt(self, t: float) -> None: ...


class BuiltinEngine:
    """The built-in engine: an :class:`AvatarController` drawn by an :class:`AvatarRenderer`.

    Args:
        spec: the look (and guardrails).
        controller: the drivers; one is made from ``spec`` if not given.
        width, height: the frame size.
    """

    def __init__(
        self,
        spec: AvatarSpec,
        controller: AvatarController | None = None,
        *,
        width: int = 1280,
        height: int = 720,
    ) -> None:
        self.controller = controller if controller is not None else AvatarController(spec)
        self.renderer = AvatarRenderer(spec, width, height)
        self.controller.spec = spec
        self.width, self.height = width, height

    @property
    def spec(self) -> AvatarSpec:
        return self.renderer.spec

    def set_spec(self, spec: AvatarSpec) -> None:
        """Switch the look (and guardrails) from the next frame on."""
        self.renderer = AvatarRenderer(spec, self.width, self.height)
        self.controller.spec = spec

    def push_audio(self, audio: av.AudioFrame | np.ndarray, t: float, sample_rate: int | None = None) -> None:
        self.controller.voice.feed(audio, t, sample_rate)

    def render(self, t: float) -> np.ndarray:
        return self.renderer.render(self.controller.rig_at(t), self.controller.caption_at(t))

    def interrupt(self, t: float) -> None:
        self.controller.interrupt(t)

    @property
    def input_stamp(self) -> Stamp | None:
        return self.controller.input_stamp
