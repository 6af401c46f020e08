"""The signalling protocol: JSON messages over ``/ws``, validated with pydantic.

Every message is an object with a ``type``. Client messages are parsed with
:func:`parse_client_message`, which raises :class:`ProtocolError` (code and a
message meant for a person) on anything malformed. docs/protocol.md is the
contract; keep the two in step.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_MESSAGE_BYTES = 64 * 1024

Name = Annotated[str, Field(min_length=1, max_length=80)]
Label = Annotated[str, Field(max_length=40, pattern=r"^[A-Za-z0-9_.\-]*$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Sdp = Annotated[str, Field(min_length=1, max_length=60_000)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class ProtocolError(Exception):
    """A client message that cannot be carried out. ``code`` is stable; ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# ---------------------------------------------------------------- customers


class Join(_Message):
    """A customer joins a queue. ``customer_key``: what ``welcome`` gave them last time."""

    type: Literal["join"]
    name: Name
    topic: Annotated[str, Field(max_length=200)] = ""
    skill: Label = ""
    language: Label = ""
    customer_key: Annotated[str, Field(max_length=400)] | None = None


class Rejoin(_Message):
    """A dropped tab comes back with its ticket."""

    type: Literal["rejoin"]
    ticket: Id


class Choose(_Message):
    """A returning customer's answer to ``choice``."""

    type: Literal["choose"]
    wait_for: Literal["agent", "any"]


class Leave(_Message):
    type: Literal["leave"]


# ------------------------------------------------------------------- agents


class Login(_Message):
    """An agent (or operator) logs in with a signed token."""

    type: Literal["login"]
    token: Annotated[str, Field(min_length=1, max_length=4000)]


class SetStatus(_Message):
    type: Literal["set_status"]
    status: Literal["available", "away"]


class SetAutoAnswer(_Message):
    type: Literal["auto_answer"]
    enabled: bool


class Accept(_Message):
    type: Literal["accept"]
    offer_id: Id


class Decline(_Message):
    type: Literal["decline"]
    offer_id: Id


class WrapUp(_Message):
    """After-call work is done; ``notes`` go into the customer's history."""

    type: Literal["wrap_up"]
    call_id: Id
    notes: Annotated[str, Field(max_length=4000)] = ""


# --------------------------------------------------------------------- both


class Chat(_Message):
    type: Literal["chat"]
    text: Text


class EndCall(_Message):
    type: Literal["end_call"]


class WebRtcOffer(_Message):
    """The browser's SDP offer, sent once ICE gathering is complete (no trickle ICE)."""

    type: Literal["webrtc_offer"]
    sdp: Sdp


class WebRtcAnswer(_Message):
    type: Literal["webrtc_answer"]
    sdp: Sdp


class SetLayout(_Message):
    """The agent picks what the customer sees (overrides the automatic choice)."""

    type: Literal["set_layout"]
    layout: Literal["agent", "screen", "side_by_side", "avatar", "avatar_screen"]


class ScreenShare(_Message):
    """Sharing started or stopped (the screen's transceiver exists from the start: no renegotiation)."""

    type: Literal["screen_share"]
    active: bool


# The figures a browser may report: a fixed set, since each becomes a receipt stage and a metric label.
BrowserStat = Literal[
    "jitter_buffer_ms",
    "decode_ms",
    "frames_dropped",
    "freeze_count",
    "fps",
    "packets_lost",
    "jitter_ms",
    "rtt_ms",
    "glass_to_glass_ms",
]
BROWSER_STATS: tuple[str, ...] = get_args(BrowserStat)


class MediaStats(_Message):
    """The browser's own figures (from getStats), so the call's latency receipt covers the whole path."""

    type: Literal["media_stats"]
    stats: dict[BrowserStat, Annotated[float, Field(ge=0, le=1e9)]]


# ------------------------------------------------------ operators: the avatar host

LongText = Annotated[str, Field(min_length=1, max_length=20_000)]


class HostStart(_Message):
    """Start the brand's live avatar host with a shipped look."""

    type: Literal["host_start"]
    spec: Label = "aurora"


class HostStop(_Message):
    type: Literal["host_stop"]


class HostCommand(_Message):
    """One script command: a line (``say Hello``) or an object (``{"command": "say", "text": "Hello"}``)."""

    type: Literal["host_command"]
    command: Annotated[str, Field(min_length=1, max_length=2000)] | dict[str, str | float | int]


class HostScript(_Message):
    """A whole script, one command a line; a bad line runs nothing and is named in the error."""

    type: Literal["host_script"]
    text: LongText


class HostLook(_Message):
    """Switch the look: a shipped look by name, or a spec given as text; a bad spec changes nothing."""

    type: Literal["host_look"]
    spec: Label | None = None
    spec_text: LongText | None = None
    format: Literal["toml", "json"] = "toml"


class HostInterrupt(_Message):
    type: Literal["host_interrupt"]


class HostHandover(_Message):
    """The host hands the calls it greets over to their human agents."""

    type: Literal["host_handover"]


HOST_MESSAGES = (HostStart, HostStop, HostCommand, HostScript, HostLook, HostInterrupt, HostHandover)


class Ping(_Message):
    type: Literal["ping"]


ClientMessage = Annotated[
    Join
    | Rejoin
    | Choose
    | Leave
    | Login
    | SetStatus
    | SetAutoAnswer
    | Accept
    | Decline
    | WrapUp
    | Chat
    | EndCall
    | WebRtcOffer
    | WebRtcAnswer
    | SetLayout
    | ScreenShare
    | MediaStats
    | HostStart
    | HostStop
    | HostCommand
    | HostScript
    | HostLook
    | HostInterrupt
    | HostHandover
    | Ping,
    Field(discriminator="type"),
]

_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_TYPES = frozenset(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(ClientMessage)[0])
)


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Parse and validate one client message, or raise :class:`ProtocolError`."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    if isinstance(raw, bytes):
        # json.loads would guess UTF-16 or UTF-32 from the bytes; the protocol says UTF-8.
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_json", "a binary frame must hold UTF-8 JSON") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProtocolError("bad_json", "the message is not valid JSON") from None
    except RecursionError:
        raise ProtocolError("bad_json", "the message nests too deeply") from None
    if _ESCAPED_SURROGATE.search(raw) and _has_lone_surrogate(data):
        raise ProtocolError("bad_json", "the message holds a lone UTF-16 surrogate (not valid Unicode)")
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "a message must have a string 'type'")
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}")
    try:
        return _adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", _describe(exc)) from None


# A frame's text is valid UTF-8, so a lone surrogate can only come from a \uD800-\uDFFF escape.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _describe(exc: ValidationError) -> str:
    """One readable line per problem, naming the field: 'name: String should have at least 1 character'."""
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"][1:]) or "message"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
