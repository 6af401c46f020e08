"""The avatar's controller: combines the drivers into one pose per frame, and reports events.

Combination, at time ``t``:
- the base pose is the face driver's (which eases to the neutral idle when the face
  is lost) or, with no face driver, the neutral idle with blinking;
- the script's expression, look, state and gestures are added as offsets;
- the mouth opens as far as the most open of face, voice and scripted speech asks.

Talking events come from the script (``say``) and from the voice (the level crossing
the gate, with a hold over short pauses); both reach :meth:`AvatarController.subscribe`.
"""

from __future__ import annotations

from collections.abc import Callable

from media.avatar.drivers.face import FaceDriver
from media.avatar.drivers.script import ScriptDriver
from media.avatar.drivers.script_commands import Command
from media.avatar.drivers.voice import VoiceDriver
from media.avatar.events import AvatarEvent, AvatarEventListeners
from media.avatar.rig import Rig, add, idle
from media.avatar.spec import AvatarSpec
from media.stamp import Stamp


class AvatarController:
    """The drivers of one avatar and their combination.

    Args:
        spec: guardrails for script commands (``None``: everything allowed).
        face: a face driver, or ``None`` (add one later with :attr:`face`).
        voice: a voice driver; one is made if not given.
        seed: the idle pose's seed.
    """

    def __init__(
        self,
        spec: AvatarSpec | None = None,
        *,
        face: FaceDriver | None = None,
        voice: VoiceDriver | None = None,
        seed: int = 0,
    ) -> None:
        self.script = ScriptDriver(spec)
        self.face = face
        self.voice = voice if voice is not None else VoiceDriver()
        self.seed = seed
        self._listeners = AvatarEventListeners()
        self._voice_talking = False
        self.script.subscribe(self._emit)

    @property
    def spec(self) -> AvatarSpec | None:
        return self.script.spec

    @spec.setter
    def spec(self, spec: AvatarSpec | None) -> None:
        self.script.spec = spec

    def subscribe(self, listener: Callable[[AvatarEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every :class:`AvatarEvent`; returns an unsubscribe function."""
        return self._listeners.subscribe(listener)

    def _emit(self, event: AvatarEvent) -> None:
        self._listeners.emit(event)

    def submit(self, command: Command | str | dict, now: float) -> Command:
        """Queue a script command (see :meth:`ScriptDriver.submit`); raises ``ScriptError``."""
        return self.script.submit(command, now)

    def interrupt(self, now: float) -> None:
        """Stop speech and flush the script's queue at once."""
        self.script.interrupt(now)

    @property
    def talking(self) -> bool:
        return self.script.talking or self._voice_talking

    @property
    def input_stamp(self) -> Stamp | None:
        """The stamp of the newest camera frame that drove the face, if stamps are read."""
        return self.face.stamp if self.face is not None else None

    def rig_at(self, t: float) -> Rig:
        """The combined pose at time ``t`` (advances the script, may emit events)."""
        self.script.update(t)
        talking = self.voice.talking_at(t)
        if talking != self._voice_talking:
            self._voice_talking = talking
            self._emit(AvatarEvent("started_talking" if talking else "stopped_talking", t, source="voice"))
        base = self.face.rig_at(t) if self.face is not None else idle(t, self.seed)
        pose = add(base, self.script.offset_at(t))
        mouth = max(pose.mouth_open, self.voice.mouth_at(t), self.script.mouth_at(t))
        return pose.with_(mouth_open=mouth).clamped()

    def caption_at(self, t: float) -> str | None:
        """The caption at ``t`` (what the script is saying), or ``None``."""
        return self.script.caption_at(t)
