"""Frames and programs for the fuzzer: messages in every encoding, junk, nesting, oversize.

A frame is a message (encoded at run time, once its run-time values are known) or raw
text or bytes; frames are drawn with weights so that messages dominate. A program is a
role to set two sockets up in (anonymous, customer, agent, operator, a call's agent and
customer) and then frames for them, half of them of the types that role most needs to try.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.contract import MODELS, TYPES, type_of
from tests.fuzz.message_strategies import client_message

ENCODINGS = [
    "text_ascii",
    "bytes_utf8",
    "bytes_utf8_bom",
    "bytes_utf16",
    "bytes_utf16le",
    "bytes_utf16be",
    "bytes_utf32",
    "bytes_latin1",
    "bytes_cp1252",
]


@dataclass(frozen=True)
class MessageFrame:
    """A message (with :class:`Ref` values) to encode at run time."""

    message: dict[str, Any]
    encoding: str = "text"


@dataclass(frozen=True)
class RawFrame:
    """A frame sent as it is: junk text, deep nesting, bytes, or too big."""

    data: str | bytes
    note: str = ""


def encode(message: dict[str, Any], encoding: str) -> str | bytes:
    """A message as a frame in ``encoding`` (text frames fall back to escapes for lone surrogates)."""
    ascii_text = json.dumps(message)
    text = json.dumps(message, ensure_ascii=False)
    if encoding == "text_ascii":
        return ascii_text
    if encoding == "text":
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return ascii_text
        return text
    codec = {
        "bytes_utf8": "utf-8",
        "bytes_utf8_bom": "utf-8-sig",
        "bytes_utf16": "utf-16",
        "bytes_utf16le": "utf-16-le",
        "bytes_utf16be": "utf-16-be",
        "bytes_utf32": "utf-32",
        "bytes_latin1": "latin-1",
        "bytes_cp1252": "cp1252",
    }[encoding]
    try:
        return text.encode(codec, "surrogatepass" if codec.startswith("utf") else "strict")
    except UnicodeEncodeError:
        return ascii_text.encode(codec)


@st.composite
def deep_nesting(draw: st.DrawFn) -> RawFrame:
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"type":"ping","x":[', "]}")]))
    depth = draw(st.sampled_from([10, 200, 500, 2_000, 10_000] + ([30_000] if opener != '{"a":' else [])))
    inner = {"[": "", '{"a":': "1"}.get(opener, "")
    if opener.startswith('{"type"'):
        return RawFrame(opener + "[" * depth + "]" * depth + closer, f"nested field {depth}")
    if draw(st.booleans()):
        field = draw(st.sampled_from(["name", "text", "token", "customer_key", "sdp", "stats"]))
        kind = draw(st.sampled_from(["join", "chat", "login", "webrtc_offer", "media_stats"]))
        return RawFrame(f'{{"type":"{kind}","{field}":' + "[" * depth + "]" * depth + "}", f"{kind} {depth}")
    return RawFrame(opener * depth + inner + closer * depth, f"nesting {depth}")


junk_text = st.sampled_from(
    [
        "",
        " ",
        "{not json",
        "null",
        "true",
        "42",
        '"ping"',
        "[]",
        "{}",
        '{"type": null}',
        '{"type": ["ping"]}',
        '{"type": "ping"',
        '{"type": "ping"}{"type": "ping"}',
        '{"type": "ping", "type": "join"}',
        '{"type": "join", "name": NaN}',
        '{"type": "media_stats", "stats": {"fps": Infinity}}',
        '{"type": "media_stats", "stats": {"fps": -0.0}}',
        "\u0000",
        "\ufeff{}",
        '{"type": "\\ud800"}',
        '{"type": "join", "name": "\\udfff\\ud800"}',
        '{"\\u0000": 1, "type": "ping"}',
        "9" * 5000,
        "1e999999",
    ]
) | st.text(max_size=40)


@st.composite
def junk_bytes(draw: st.DrawFn) -> RawFrame:
    choice = draw(st.sampled_from(["random", "utf16_ping", "bom_ping", "overlong", "lone_cont"]))
    data = {
        "utf16_ping": '{"type": "ping"}'.encode("utf-16"),
        "bom_ping": b"\xef\xbb\xbf" + b'{"type": "ping"}',
        "overlong": b'{"type": "\xc0\xaf"}',
        "lone_cont": b'{"type": "ping", "x": "\x80"}',
    }.get(choice)
    return RawFrame(data if data is not None else draw(st.binary(max_size=64)), f"bytes {choice}")


oversized = st.sampled_from(
    [
        RawFrame(json.dumps({"type": "chat", "text": "x" * 70_000}), "oversized chat"),
        RawFrame(b"[" * 66_000, "oversized bytes"),
        RawFrame("é" * 33_000, "oversized non-ASCII (66 KB as UTF-8)"),
    ]
)

encodings = st.one_of(st.just("text"), st.just("text"), st.just("text"), st.sampled_from(ENCODINGS))
message_frames = st.builds(MessageFrame, client_message(), encodings)


@st.composite
def weighted(draw: st.DrawFn, *choices: tuple[int, st.SearchStrategy[Any]]) -> Any:
    """One of ``choices`` with these weights (``st.one_of`` flattens nested choices: no weights)."""
    pick = draw(st.integers(0, sum(w for w, _ in choices) - 1))
    for weight, strategy in choices:
        if pick < weight:
            return draw(strategy)
        pick -= weight
    raise AssertionError("unreachable")


frames = weighted(
    (50, message_frames),
    (10, st.builds(MessageFrame, client_message(), st.just("text"))),
    (8, junk_text.map(RawFrame)),
    (8, deep_nesting()),
    (8, junk_bytes()),
    (2, oversized),
)


SCENARIOS = ["anonymous", "customer", "agent", "operator", "call"]
# The types each role's sockets most need to try (any type is still drawn half the time).
FOCUS = {
    "anonymous": ["join", "join", "join", "rejoin", "login", "login", "accept", "webrtc_offer", "chat"],
    "customer": ["chat", "leave", "choose", "end_call", "webrtc_offer", "join", "rejoin", "login"],
    "agent": ["set_status", "auto_answer", "accept", "decline", "wrap_up", "chat", "end_call", "login"],
    "operator": [t for t in TYPES if t.startswith("host_")] + ["webrtc_offer", "join", "set_status"],
    "call": ["webrtc_offer"] * 3 + ["media_stats"] * 2 + ["screen_share", "set_layout", "chat", "end_call"],
}


def focused_frames(scenario: str) -> st.SearchStrategy[MessageFrame | RawFrame]:
    models = [m for name in FOCUS[scenario] for m in MODELS if type_of(m) == name]
    focused = st.builds(
        MessageFrame,
        st.sampled_from(models).flatmap(lambda m: client_message(m, valid_bias=True)),
        encodings,
    )
    return weighted((60, focused), (40, frames))


@dataclass(frozen=True)
class Program:
    """One example: sockets set up in a role, then (socket index, frame) actions."""

    scenario: str
    available: bool
    actions: tuple[tuple[int, MessageFrame | RawFrame], ...]

    def __repr__(self) -> str:  # short: hypothesis prints failing examples
        shown = [f"{who}:{repr(frame)[:120]}" for who, frame in self.actions]
        return f"Program({self.scenario!r}, available={self.available}, actions={shown})"


@st.composite
def programs(draw: st.DrawFn, max_actions: int = 20) -> Program:
    scenario = draw(st.sampled_from(SCENARIOS))
    action = st.tuples(st.integers(0, 1), focused_frames(scenario))
    actions = draw(st.lists(action, min_size=5, max_size=max_actions))
    return Program(scenario, draw(st.booleans()), tuple(actions))
