"""Script driver: say, expression, gesture, look, wait, listen, idle, interrupt; with timing.

Pure apart from the callbacks it calls: time is passed in to every method. Commands
are queued and run in order; ``say`` and ``wait`` take time, the others take
effect at once (a gesture plays alongside what follows: wave while saying hello).
``interrupt`` is never queued: it stops speech and flushes the queue at once.

The commands and their script file format are in
:mod:`media.avatar.drivers.script_commands`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Literal

from media.avatar.drivers.script_commands import (
    Command,
    Expression,
    Gesture,
    Idle,
    Interrupt,
    Listen,
    Look,
    Say,
    ScriptError,
    Wait,
    check,
    command_from_dict,
    parse_command,
    parse_script,
)
from media.avatar.events import AvatarEvent, AvatarEventListeners
from media.avatar.rig import EXPRESSIONS, GESTURES, LOOKS, NEUTRAL, Rig, add, gesture, lerp, smoothstep
from media.avatar.spec import AvatarSpec

logger = logging.getLogger(__name__)

SECONDS_PER_CHAR = 0.065  # ~15 characters a second: an unhurried speaking pace
SAY_MIN_SECONDS = 0.6
EXPRESSION_BLEND = 0.3
LOOK_BLEND = 0.35
INTERRUPT_FADE = 0.25
MAX_QUEUE = 200
VOWELS = set("aeiouyàáâäèéêëìíîïòóôöùúûüAEIOUY")


def _speech_mouth(text: str, elapsed: float, duration: float) -> float:
    """A plausible mouth opening for ``text`` spoken over ``duration``, at ``elapsed`` (deterministic)."""
    if not 0 <= elapsed < duration or not text:
        return 0.0
    position = elapsed / duration * len(text)
    index = min(len(text) - 1, int(position))
    frac = position - index

    def level(ch: str) -> float:
        if ch in VOWELS:
            return 0.55 + 0.35 * ((ord(ch) * 7) % 5) / 4
        if ch.isalnum():
            return 0.22
        return 0.02

    here = level(text[index])
    there = level(text[index + 1]) if index + 1 < len(text) else 0.0
    value = here + (there - here) * smoothstep(frac)
    # Ease in and out at the ends of the utterance.
    edge = min(1.0, elapsed / 0.08, (duration - elapsed) / 0.1)
    return max(0.0, value * edge)


class ScriptDriver:
    """Runs commands over time and reports talking and state changes.

    Args:
        spec: guardrails (allowed expressions and gestures); ``None`` allows all.
        seconds_per_char: speaking pace, for ``say`` without a duration.

    Feed commands with :meth:`submit` (or :meth:`load`), advance time with
    :meth:`update` (the avatar track does so every frame), and read the pose
    contribution with :meth:`offset_at`, :meth:`mouth_at` and :meth:`caption_at`.
    Subscribe to :class:`AvatarEvent` with :meth:`subscribe`.
    """

    def __init__(self, spec: AvatarSpec | None = None, *, seconds_per_char: float = SECONDS_PER_CHAR) -> None:
        self.spec = spec
        self.seconds_per_char = seconds_per_char
        self.queue: deque[Command] = deque()
        self.state: Literal["idle", "listening"] = "idle"
        self._listeners = AvatarEventListeners()
        self._busy_until: float | None = None  # when the current say/wait ends
        self._speech: tuple[Say, float, float] | None = None  # (command, start, duration)
        self._expression = (NEUTRAL, NEUTRAL, -math.inf)  # (from, to, since)
        self._expression_until: float | None = None
        self._look = (NEUTRAL, NEUTRAL, -math.inf)
        self._gestures: list[tuple[str, float]] = []
        self._state_pose = (NEUTRAL, NEUTRAL, -math.inf)
        self._fade_from: tuple[Rig, float] | None = None  # gestures cut by an interrupt fade out
        self._now = -math.inf

    # -- input -------------------------------------------------------------

    def subscribe(self, listener: Callable[[AvatarEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that unsubscribes it."""
        return self._listeners.subscribe(listener)

    def submit(self, command: Command | str | dict, now: float) -> Command:
        """Queue a command (an interrupt acts at once). Text and dicts are parsed first.

        Raises:
            ScriptError: a bad command or a guardrail violation; nothing is queued.
        """
        if isinstance(command, str):
            command = parse_command(command, self.spec)
        elif isinstance(command, dict):
            command = command_from_dict(command, self.spec)
        else:
            check(command, self.spec)
        if isinstance(command, Interrupt):
            self.interrupt(now)
            return command
        if len(self.queue) >= MAX_QUEUE:
            raise ScriptError(f"the queue is full ({MAX_QUEUE} commands): interrupt or wait")
        self.queue.append(command)
        self.update(now)
        return command

    def load(self, text: str, now: float) -> list[Command]:
        """Queue a whole script file (validated first: a bad line queues nothing)."""
        commands = parse_script(text, self.spec)
        if len(self.queue) + len(commands) > MAX_QUEUE:
            raise ScriptError(
                f"the script is too long ({len(commands)} commands, at most {MAX_QUEUE} queued)"
            )
        for command in commands:
            if isinstance(command, Interrupt):
                self.interrupt(now)
            else:
                self.queue.append(command)
        self.update(now)
        return commands

    def interrupt(self, now: float) -> None:
        """Stop speaking and drop everything queued, at once; gestures in flight fade out."""
        self._advance_time(now)
        dropped = len(self.queue)
        self.queue.clear()
        self._busy_until = None
        if self._speech is not None:
            self._stop_speech(now, interrupted=True)
        if self._gestures:
            self._fade_from = (self._gesture_offset(now), now)
            self._gestures.clear()
        logger.info("interrupt: speech stopped, %d queued commands dropped", dropped)

    # -- time --------------------------------------------------------------

    def _advance_time(self, now: float) -> None:
        self._now = max(self._now, now)

    def update(self, now: float) -> None:
        """Advance to time ``now``: finish what is due, start what comes next."""
        self._advance_time(now)
        while True:
            if self._busy_until is not None:
                if now < self._busy_until:
                    break
                ended_at = self._busy_until
                self._busy_until = None
                if self._speech is not None:
                    self._stop_speech(ended_at, interrupted=False)
                start = ended_at
            else:
                start = now
            if not self.queue:
                break
            self._start(self.queue.popleft(), start)
        if self._expression_until is not None and now >= self._expression_until:
            self._set_expression(NEUTRAL, self._expression_until)
            self._expression_until = None
        self._gestures = [(name, t0) for name, t0 in self._gestures if now - t0 < GESTURES[name]]

    def _start(self, command: Command, at: float) -> None:
        if isinstance(command, Say):
            duration = command.duration or max(SAY_MIN_SECONDS, len(command.text) * self.seconds_per_char)
            self._speech = (command, at, duration)
            self._busy_until = at + duration
            self._emit(AvatarEvent("started_talking", at, command.text))
        elif isinstance(command, Wait):
            self._busy_until = at + command.seconds
        elif isinstance(command, Expression):
            self._set_expression(EXPRESSIONS[command.name], at)
            self._expression_until = at + command.hold if command.hold else None
        elif isinstance(command, Gesture):
            self._gestures.append((command.name, at))
        elif isinstance(command, Look):
            self._look = (self._blend(self._look, at, LOOK_BLEND), LOOKS[command.target], at)
        elif isinstance(command, Listen | Idle):
            state = "listening" if isinstance(command, Listen) else "idle"
            if state != self.state:
                pose = LISTENING if state == "listening" else NEUTRAL
                self._state_pose = (self._blend(self._state_pose, at, EXPRESSION_BLEND), pose, at)
                self.state = state
                self._emit(AvatarEvent("state", at, state))

    def _set_expression(self, pose: Rig, at: float) -> None:
        self._expression = (self._blend(self._expression, at, EXPRESSION_BLEND), pose, at)

    def _stop_speech(self, at: float, *, interrupted: bool) -> None:
        assert self._speech is not None
        command = self._speech[0]
        self._speech = None
        self._emit(AvatarEvent("stopped_talking", at, command.text, interrupted=interrupted))

    def _emit(self, event: AvatarEvent) -> None:
        self._listeners.emit(event)

    # -- output ------------------------------------------------------------

    @staticmethod
    def _blend(blend: tuple[Rig, Rig, float], now: float, seconds: float) -> Rig:
        start, end, since = blend
        return lerp(start, end, smoothstep((now - since) / seconds))

    @property
    def talking(self) -> bool:
        """Whether a ``say`` is running."""
        return self._speech is not None

    @property
    def busy(self) -> bool:
        """Whether anything is running or queued."""
        return self._busy_until is not None or bool(self.queue)

    def caption_at(self, now: float) -> str | None:
        """The caption to show at ``now``: the text being said, else ``None``."""
        if self._speech is None:
            return None
        command, start, duration = self._speech
        return command.text if start <= now < start + duration else None

    def mouth_at(self, now: float) -> float:
        """The mouth opening that speech asks for at ``now`` (0 when silent)."""
        if self._speech is None:
            return 0.0
        command, start, duration = self._speech
        return _speech_mouth(command.text, now - start, duration)

    def _gesture_offset(self, now: float) -> Rig:
        total = NEUTRAL
        for name, t0 in self._gestures:
            total = add(total, gesture(name, now - t0))
        return total

    def offset_at(self, now: float) -> Rig:
        """The script's offset from neutral at ``now``: expression, look, state and gestures."""
        total = add(
            self._blend(self._expression, now, EXPRESSION_BLEND), self._blend(self._look, now, LOOK_BLEND)
        )
        total = add(total, self._blend(self._state_pose, now, EXPRESSION_BLEND))
        total = add(total, self._gesture_offset(now))
        if self._fade_from is not None:
            pose, since = self._fade_from
            weight = 1 - smoothstep((now - since) / INTERRUPT_FADE)
            if weight <= 0:
                self._fade_from = None
            else:
                total = add(total, lerp(NEUTRAL, pose, weight))
        return total


LISTENING = Rig(roll=5.0, pitch=3.0, smile=0.2, brows=0.15)
"""The listening state's offset: a slight head tilt and an attentive face."""
