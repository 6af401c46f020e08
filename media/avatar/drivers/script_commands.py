"""The avatar script's commands: say, expression, gesture, look, wait, listen, idle, interrupt.

What each command is, its checks against the brand's guardrails, and reading it from text,
JSON or a script file. Pure: no clock, no I/O.

Script file format, one command per line (``#`` starts a comment)::

    expression smile
    gesture wave                    # plays while the next lines run
    say Hello! Welcome to Acme.     # the rest of the line is the caption (quotes optional)
    wait 1.5
    look screen
    say "Here is your order."
    listen
    idle

Commands from a controller arrive as text (:func:`parse_command`) or JSON objects
(:func:`command_from_dict`, e.g. ``{"command": "say", "text": "Hi"}``). An unknown
command, a bad argument or a guardrail violation (an expression or gesture the
spec does not allow) raises :class:`ScriptError`, with the line number for files.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

from media.avatar.rig import EXPRESSIONS, GESTURES, LOOKS
from media.avatar.spec import AvatarSpec

MAX_SAY_CHARS = 500


class ScriptError(ValueError):
    """A command that cannot run: unknown, malformed, or against the brand's guardrails."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    duration: float | None = None  # None: from the text's length


@dataclass(frozen=True, slots=True)
class Expression:
    name: str
    hold: float | None = None  # None: until the next expression


@dataclass(frozen=True, slots=True)
class Gesture:
    name: str


@dataclass(frozen=True, slots=True)
class Look:
    target: str


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Listen:
    pass


@dataclass(frozen=True, slots=True)
class Idle:
    pass


@dataclass(frozen=True, slots=True)
class Interrupt:
    pass


Command = Say | Expression | Gesture | Look | Wait | Listen | Idle | Interrupt
COMMANDS = ("say", "expression", "gesture", "look", "wait", "listen", "idle", "interrupt")


def _number(value: Any, what: str, *, lo: float = 0.0, hi: float = 600.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ScriptError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ScriptError(f"{what} must be between {lo:g} and {hi:g} seconds, got {value!r}")
    return number


def check(command: Command, spec: AvatarSpec | None = None) -> Command:
    """Validate ``command`` (names, ranges) and the spec's guardrails; returns it unchanged.

    Raises:
        ScriptError: saying what is wrong.
    """
    if isinstance(command, Say):
        if not command.text.strip():
            raise ScriptError("say needs some text")
        if len(command.text) > MAX_SAY_CHARS:
            raise ScriptError(f"say takes at most {MAX_SAY_CHARS} characters; split the text")
        if command.duration is not None:
            _number(command.duration, "say's duration", lo=0.1, hi=120)
    elif isinstance(command, Expression):
        if command.name not in EXPRESSIONS:
            raise ScriptError(f"unknown expression {command.name!r} (known: {', '.join(EXPRESSIONS)})")
        if spec is not None and not spec.allows_expression(command.name):
            raise ScriptError(f"expression {command.name!r} is not allowed by the {spec.name} spec")
        if command.hold is not None:
            _number(command.hold, "expression hold", lo=0.1)
    elif isinstance(command, Gesture):
        if command.name not in GESTURES:
            raise ScriptError(f"unknown gesture {command.name!r} (known: {', '.join(GESTURES)})")
        if spec is not None and not spec.allows_gesture(command.name):
            raise ScriptError(f"gesture {command.name!r} is not allowed by the {spec.name} spec")
    elif isinstance(command, Look):
        if command.target not in LOOKS:
            raise ScriptError(f"look at {command.target!r}? use one of {', '.join(LOOKS)}")
    elif isinstance(command, Wait):
        _number(command.seconds, "wait")
    elif not isinstance(command, Listen | Idle | Interrupt):
        raise ScriptError(f"not a command: {command!r}")
    return command


def parse_command(text: str, spec: AvatarSpec | None = None) -> Command:
    """One command from a line of text (see the module's format).

    Raises:
        ScriptError: unknown command, bad arguments or a guardrail violation.
    """
    stripped = text.strip()
    name, _, rest = stripped.partition(" ")
    name, rest = name.lower(), rest.strip()
    if name == "say":
        if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
            rest = rest[1:-1]
        return check(Say(rest), spec)
    try:
        args = shlex.split(rest, comments=False)
    except ValueError as exc:
        raise ScriptError(f"{name}: {exc}") from None
    if name not in COMMANDS:
        raise ScriptError(f"unknown command {name!r} (use one of: {', '.join(COMMANDS)})")
    expected = {"expression": (1, 2), "gesture": (1, 1), "look": (1, 1), "wait": (1, 1)}.get(name, (0, 0))
    if not expected[0] <= len(args) <= expected[1]:
        usage = {
            "expression": "expression NAME [HOLD_SECONDS]",
            "gesture": "gesture NAME",
            "look": "look camera|screen",
            "wait": "wait SECONDS",
        }.get(name, name)
        raise ScriptError(f"usage: {usage}")
    if name == "expression":
        hold = _number(args[1], "expression hold", lo=0.1) if len(args) > 1 else None
        return check(Expression(args[0].lower(), hold), spec)
    if name == "gesture":
        return check(Gesture(args[0].lower()), spec)
    if name == "look":
        return check(Look(args[0].lower()), spec)
    if name == "wait":
        return check(Wait(_number(args[0], "wait")), spec)
    return {"listen": Listen(), "idle": Idle(), "interrupt": Interrupt()}[name]


def command_from_dict(data: dict[str, Any], spec: AvatarSpec | None = None) -> Command:
    """One command from a JSON object: ``{"command": "say", "text": ...}``, ``{"command":
    "expression", "name": ..., "hold": ...}``, ``{"command": "look", "target": ...}``,
    ``{"command": "wait", "seconds": ...}``, ...

    Raises:
        ScriptError: unknown command, missing or bad fields, or a guardrail violation.
    """
    if not isinstance(data, dict):
        raise ScriptError("a command is an object with a 'command' field")
    name = data.get("command")
    fields = {k: v for k, v in data.items() if k != "command"}
    allowed = {
        "say": {"text", "duration"},
        "expression": {"name", "hold"},
        "gesture": {"name"},
        "look": {"target"},
        "wait": {"seconds"},
    }
    if name not in COMMANDS:
        raise ScriptError(f"unknown command {name!r} (use one of: {', '.join(COMMANDS)})")
    extra = set(fields) - allowed.get(name, set())
    if extra:
        raise ScriptError(f"{name}: unexpected field(s) {sorted(extra)}")
    try:
        if name == "say":
            text = fields["text"]
            if not isinstance(text, str):
                raise ScriptError("say: text must be a string")
            duration = fields.get("duration")
            return check(
                Say(text, None if duration is None else _number(duration, "say's duration", lo=0.1, hi=120)),
                spec,
            )
        if name == "expression":
            hold = fields.get("hold")
            return check(
                Expression(str(fields["name"]), None if hold is None else _number(hold, "hold", lo=0.1)), spec
            )
        if name == "gesture":
            return check(Gesture(str(fields["name"])), spec)
        if name == "look":
            return check(Look(str(fields["target"])), spec)
        if name == "wait":
            return check(Wait(_number(fields["seconds"], "wait")), spec)
    except KeyError as exc:
        raise ScriptError(f"{name}: missing field {exc.args[0]!r}") from None
    return {"listen": Listen(), "idle": Idle(), "interrupt": Interrupt()}[name]


def parse_script(text: str, spec: AvatarSpec | None = None) -> list[Command]:
    """All commands of a script file; the first bad line raises, so nothing half-runs.

    Raises:
        ScriptError: with ``line`` set.
    """
    commands: list[Command] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("say ") or line == "say":
            # A caption may contain '#': only a comment after a closing quote is cut.
            if line[4:].lstrip()[:1] in "\"'" and "#" in line:
                quote = line[4:].lstrip()[0]
                end = line.rfind(quote)
                line = line[: end + 1] if end > 4 else line
        else:
            line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            commands.append(parse_command(line, spec))
        except ScriptError as exc:
            raise ScriptError(str(exc), line=number) from None
    return commands
