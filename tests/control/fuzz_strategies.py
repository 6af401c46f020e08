"""Hypothesis strategies and an independent oracle for the protocol fuzzer (tests/control/test_fuzz.py).

Structure-aware: every client message type is read off the ``ClientMessage`` union in
telepresence/protocol.py (a new type is fuzzed without touching this file), each field's
values come from its annotation (lengths, patterns, literals, numbers), and then get
broken: wrong types, missing and extra fields, huge and non-ASCII values, deep nesting,
other encodings. Values that only make sense at run time (a real token, this socket's
ticket, the offer just received, a real SDP offer) are :class:`Ref` placeholders that
the runner resolves, so strategies stay pure and examples replay.

The error and close codes a client may see are parsed from docs/protocol.md (the
contract), never listed twice.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from telepresence import protocol

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

# ------------------------------------------------------------------ the contract


def _doc_section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"docs/protocol.md has no '## {title}' section"
    return found.group(1)


def documented_error_codes() -> frozenset[str]:
    """Every code in the first column of the Errors table of docs/protocol.md."""
    codes: set[str] = set()
    for line in _doc_section("Errors").splitlines():
        if line.startswith("| `"):
            codes.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert {"bad_json", "invalid", "internal"} <= codes, codes
    return frozenset(codes)


def documented_close_codes() -> frozenset[int]:
    """Every code in the first column of the Close codes table of docs/protocol.md."""
    codes = {int(m.group(1)) for m in re.finditer(r"^\| (\d{4}) \|", _doc_section("Close codes"), re.M)}
    assert {1000, 1008, 1009} <= codes, codes
    return frozenset(codes)


# ------------------------------------------------------------------ the models

MODELS: tuple[type[protocol._Message], ...] = tuple(get_args(get_args(protocol.ClientMessage)[0]))


def type_of(model: type[protocol._Message]) -> str:
    return get_args(model.model_fields["type"].annotation)[0]


TYPES: tuple[str, ...] = tuple(type_of(m) for m in MODELS)
ENTRY_TYPES = frozenset({"join", "rejoin", "login", "ping"})  # what an anonymous socket may send
_ADAPTER: TypeAdapter[Any] = TypeAdapter(protocol.ClientMessage)


@dataclass(frozen=True)
class Ref:
    """A value known only at run time: ``kind`` names it, ``damage`` says how to break it."""

    kind: str  # token, customer_key, ticket, offer_id, call_id, sdp
    variant: str = ""  # which one: e.g. "agent", "operator", "own", "bystander"
    damage: str = "none"
    at: int = 0  # where a damage applies (an index, modulo the length)
    char: str = ""  # what a damage inserts


# ------------------------------------------------------------------ values

NON_ASCII = ["é", "ß", "中", "😀", "\u0000", "\ud800", "\udfff", "\u200b", "\ufeff", "\u202e", "\x7f", "ÿ"]
LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
WEB_CLIENT_STATS = [
    "jitter_buffer_ms",
    "decode_ms",
    "frames_dropped",
    "freeze_count",
    "fps",
    "packets_lost",
    "jitter_ms",
    "rtt_ms",
]
# Fixed vocabulary of queue labels the fuzzer uses besides random ones (bounds what may linger).
SKILL_WORDS = ["", "billing", "sales"]
LANGUAGE_WORDS = ["", "en", "fr"]

nasty_char = st.sampled_from(NON_ASCII)
any_text = st.text(st.characters(codec="utf-8"), max_size=30) | st.text(
    st.characters(blacklist_categories=()), max_size=30
)


@st.composite
def huge_text(draw: st.DrawFn) -> str:
    """A long string cheaply: a short piece repeated, sometimes past the 64 KiB frame limit."""
    piece = draw(st.sampled_from(["x", "é", "😀", "\u0000", " ", "ab", "\\", '"']))
    # Under the frame limit even as \\uXXXX escapes (oversized frames have a strategy of their own).
    count = draw(st.sampled_from([81, 201, 401, 2001, 4001] + ([9000] if piece.isascii() else [])))
    return piece * count


@st.composite
def nasty_text(draw: st.DrawFn) -> str:
    """Text with non-ASCII, NUL, lone surrogates, emoji or bidi controls somewhere in it."""
    base = draw(st.text(alphabet="abc XYZ.-", max_size=12))
    at = draw(st.integers(0, len(base)))
    return base[:at] + draw(st.text(nasty_char, min_size=1, max_size=4)) + base[at:]


wrong_type = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just({"$ne": None}),
)


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
        elif isinstance(item, annotated_types.MinLen):
            found["min_len"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_len"] = item.max_length
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        elif isinstance(item, annotated_types.Le):
            found["le"] = item.le
        elif getattr(item, "pattern", None):
            found["pattern"] = item.pattern
    return found


def good_value(annotation: Any, constraints: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values that satisfy ``annotation`` (mostly): read off the pydantic annotation."""
    cons = dict(constraints or {})
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return good_value(base, {**cons, **_constraints(metadata)})
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin in (Union, types.UnionType):
        return st.one_of([good_value(arg) for arg in get_args(annotation)])
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation in (int, float):
        low, high = cons.get("ge", -1e6), cons.get("le", 1e6)
        numbers = st.floats(low, high) if annotation is float else st.integers(int(low), int(high))
        return numbers | st.sampled_from([low, high])
    if origin is dict:
        key, value = get_args(annotation)
        keys = good_value(key) | st.text(alphabet=LABEL_CHARS, min_size=1, max_size=20)
        return st.dictionaries(keys, good_value(value), max_size=min(cons.get("max_len", 5), 25))
    if annotation is str:
        low, high = cons.get("min_len", 0), cons.get("max_len", 100)
        if cons.get("pattern"):
            words = SKILL_WORDS + LANGUAGE_WORDS + ["aurora", "harbor"]
            random_label = st.text(alphabet=LABEL_CHARS, min_size=1, max_size=high)
            return st.sampled_from(words) | random_label
        return st.text(st.characters(codec="utf-8"), min_size=max(low, 1), max_size=min(high, 40)) | st.just(
            "Ann"
        )
    return wrong_type


def bad_value(annotation: Any, constraints: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values a field must refuse, or that probe its edges: types, lengths, characters."""
    cons = _constraints(get_args(annotation)[1:]) if get_origin(annotation) is Annotated else {}
    cons.update(constraints or {})
    edges = [""]
    if "max_len" in cons:
        edges += ["y" * (cons["max_len"] + 1), "é" * cons["max_len"], " " * (cons["max_len"] + 5)]
    return st.one_of(
        wrong_type,
        st.sampled_from(edges),
        huge_text(),
        nasty_text(),
        st.sampled_from(["../../etc/passwd", "a b", "<script>", "'; DROP TABLE", "general/any", "\t \n"]),
    )


SDP_DAMAGES = [
    "none",
    "drop_m:audio",
    "drop_m:video",
    "drop_m:video_first",
    "drop_m:all",
    "drop_line:a=fingerprint",
    "drop_line:a=ice-ufrag",
    "drop_line:a=ice-pwd",
    "drop_line:a=rtpmap",
    "drop_line:a=group",
    "drop_line:a=setup",
    "drop_line:a=candidate",
    "drop_line:a=mid",
    "drop_line:c=",
    "drop_line:o=",
    "drop_line:v=",
    "drop_line:m=",
    "video_codecs_unknown",
    "swap_sections",
    "truncate",
    "insert",
    "lf_only",
    "header_only",
]
TOKEN_DAMAGES = [
    "none",
    "flip",
    "truncate",
    "insert",
    "append",
    "no_dot",
    "two_dots",
    "swap_halves",
    "body_only",
    "signature_of_other",
    "upper",
    "pad_spaces",
    "empty",
]


def ref(
    kind: str, variants: list[str], damages: list[str], likely: list[str] | None = None
) -> st.SearchStrategy[Ref]:
    """A run-time value; ``likely`` damages are drawn about half the time."""
    return st.builds(
        Ref,
        kind=st.just(kind),
        variant=st.sampled_from(variants),
        damage=st.sampled_from(damages) | st.sampled_from(likely or damages),
        at=st.integers(0, 10_000),
        char=nasty_char | nasty_char | st.sampled_from(["A", "-", "_", "=", ".", " "]),
    )


# Field name -> run-time values, besides the annotation's own.
SEMANTIC: dict[str, st.SearchStrategy[Any]] = {
    "token": ref(
        "token",
        ["agent", "operator", "agent_other_name", "expired", "customer_key", "agent_nonascii_name"],
        TOKEN_DAMAGES,
        ["none", "insert", "append"],
    ),
    "customer_key": ref(
        "customer_key", ["own", "bystander", "minted", "agent_token"], TOKEN_DAMAGES, ["insert", "append"]
    ),
    "ticket": ref("ticket", ["own", "bystander_damaged", "random"], TOKEN_DAMAGES),
    "offer_id": ref("offer_id", ["last", "offer-1"], ["none", "flip", "insert", "append"]),
    "call_id": ref("call_id", ["current", "call-x"], ["none", "flip", "insert", "append"]),
    "sdp": ref(
        "sdp", ["offer"], SDP_DAMAGES, ["drop_m:audio", "drop_m:video", "drop_m:all", "none", "drop_m:audio"]
    ),
    "command": st.sampled_from(
        ["say Hello", "gesture wave", "expression happy 2", "look camera", "wait 0.1", "listen", "dance"]
    )
    | st.fixed_dictionaries(
        {"command": st.sampled_from(["say", "gesture", "nope"]), "text": st.text(max_size=9)}
    ),
    "text": st.sampled_from(["hello", "say Hello\ngesture nod", "say hi\nfly away", "é😀"]) | any_text,
    "spec_text": st.sampled_from(['name = "x"', "{not toml", '{"name": 1}', "[[[", ""]) | any_text,
}


@st.composite
def field_value(draw: st.DrawFn, name: str, info: FieldInfo, broken: bool) -> Any:
    if broken:
        return draw(bad_value(info.annotation, _constraints(info.metadata)))
    if name in SEMANTIC and draw(st.integers(0, 3)) > 0:
        return draw(SEMANTIC[name])
    return draw(good_value(info.annotation, _constraints(info.metadata)))


MUTATIONS = ["valid", "valid", "valid", "drop_field", "extra_field", "break_field", "break_type", "null_type"]


@st.composite
def client_message(
    draw: st.DrawFn, model: type[protocol._Message] | None = None, valid_bias: bool = False
) -> dict[str, Any]:
    """One client message of some type, valid-looking or broken in one or two ways."""
    model = model or draw(st.sampled_from(MODELS))
    fields = {n: f for n, f in model.model_fields.items() if n != "type"}
    message: dict[str, Any] = {"type": type_of(model)}
    mutation = (
        draw(st.sampled_from(MUTATIONS) | st.just("valid"))
        if valid_bias
        else draw(st.sampled_from(MUTATIONS))
    )
    breaking = draw(st.sampled_from(sorted(fields))) if fields and mutation == "break_field" else None
    for name, info in fields.items():
        if info.is_required() or draw(st.booleans()) or name == breaking:
            message[name] = draw(field_value(name, info, broken=name == breaking))
    if mutation == "drop_field" and len(message) > 1:
        del message[draw(st.sampled_from(sorted(k for k in message if k != "type")))]
    elif mutation == "extra_field":
        extra = draw(st.sampled_from(["evil", "__proto__", "type ", "Type", "é"]) | st.text(max_size=8))
        if extra != "type":
            message[extra] = draw(wrong_type | nasty_text())
    elif mutation == "break_type":
        message["type"] = draw(
            st.sampled_from([type_of(model).upper(), type_of(model) + " ", "teleport", "", "pïng"])
            | nasty_text()
        )
    elif mutation == "null_type":
        message["type"] = draw(wrong_type)
    return message


# ------------------------------------------------------------------ frames

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


# ------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class Expectation:
    """What the contract says must happen to a frame before any state is considered.

    ``codes``: the frame must get one of these errors, unless ``ok`` (it may also be carried
    out, as ``message_type``). Where the contract leaves a choice (a lone surrogate escape,
    a UTF-8 byte order mark) both readings are allowed.
    """

    codes: frozenset[str] = frozenset()
    ok: bool = True
    close: int | None = None
    message_type: str | None = None


def _verdict(data: Any) -> Expectation:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return Expectation(frozenset({"bad_message"}), ok=False)
    if data["type"] not in TYPES:
        return Expectation(frozenset({"unknown_type"}), ok=False)
    try:
        _ADAPTER.validate_python(data)
    except ValidationError:
        return Expectation(frozenset({"invalid"}), ok=False)
    except Exception:  # noqa: BLE001 - the schema itself choked: let the server's answer decide
        return Expectation(frozenset({"invalid", "bad_json"}), ok=True)
    return Expectation(message_type=data["type"])


def _has_lone_surrogate(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _either(verdict: Expectation) -> Expectation:
    """The verdict, or bad_json."""
    return Expectation(verdict.codes | {"bad_json"}, ok=verdict.ok, message_type=verdict.message_type)


def expect(frame: str | bytes, max_bytes: int) -> Expectation:
    """The contract's reading of a frame, written independently of the server's parser."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return Expectation(ok=False, close=1009)
    bom = False
    if isinstance(frame, bytes):
        try:
            text = frame.decode("utf-8")  # binary frames are UTF-8 (docs: "read as UTF-8 JSON")
        except UnicodeDecodeError:
            return Expectation(frozenset({"bad_json"}), ok=False)
        if text.startswith("\ufeff"):
            text, bom = text[1:], True
    else:
        text = frame
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return Expectation(frozenset({"bad_json"}), ok=False)
    verdict = _verdict(data)
    return _either(verdict) if bom or _has_lone_surrogate(data) else verdict


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


def resolve(value: Any, lookup: typing.Callable[[Ref], Any]) -> Any:
    """``value`` with every :class:`Ref` replaced by ``lookup(ref)``."""
    if isinstance(value, Ref):
        return lookup(value)
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def damage(text: str, how: str, at: int = 0, char: str = "", other: str = "") -> str:
    """``text`` broken in one way: a token, a key or a ticket that is damaged, forged or foreign."""
    i = at % (len(text) + 1)
    if how == "none":
        return text
    if how == "flip" and text:
        i = at % len(text)
        return text[:i] + ("B" if text[i] == "A" else "A") + text[i + 1 :]
    if how == "truncate":
        return text[:i]
    if how == "insert":
        return text[:i] + (char or "é") + text[i:]
    if how == "append":
        return text + (char or "=")
    if how == "no_dot":
        return text.replace(".", "")
    if how == "two_dots":
        return text[:i] + "." + text[i:] + "."
    if how == "swap_halves":
        body, _, signature = text.partition(".")
        return f"{signature}.{body}"
    if how == "body_only":
        return text.partition(".")[0] + "."
    if how == "signature_of_other" and other:
        return text.partition(".")[0] + "." + other.partition(".")[2]
    if how == "upper":
        return text.upper()
    if how == "pad_spaces":
        return f"  {text}\t"
    if how == "empty":
        return ""
    return text


def damage_sdp(sdp: str, how: str, at: int = 0, char: str = "") -> str:
    """A valid offer with sections or lines removed, reordered, truncated or spoiled."""
    lines = sdp.replace("\r\n", "\n").strip("\n").split("\n")
    header: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            header.append(line)

    def join(head: list[str], parts: list[list[str]]) -> str:
        return "\r\n".join(head + [line for part in parts for line in part]) + "\r\n"

    if how == "none":
        return sdp
    if how.startswith("drop_m:"):
        what = how.split(":")[1]
        if what == "audio":
            kept = [s for s in sections if not s[0].startswith("m=audio")]
        elif what == "video":
            kept = [s for s in sections if not s[0].startswith("m=video")]
        elif what == "video_first":
            videos = [i for i, s in enumerate(sections) if s[0].startswith("m=video")]
            kept = [s for i, s in enumerate(sections) if not videos or i != videos[0]]
        else:
            kept = []
        return join(header, kept)
    if how.startswith("drop_line:"):
        prefix = how.split(":", 1)[1]
        return join(
            [h for h in header if not h.startswith(prefix)],
            [[ln for ln in part if not ln.startswith(prefix)] for part in sections],
        )
    if how == "video_codecs_unknown":
        return sdp.replace("VP8/90000", "XYZ/90000").replace("H264/90000", "ABC/90000")
    if how == "swap_sections":
        return join(header, sections[::-1])
    if how == "truncate":
        return sdp[: max(1, at % len(sdp))]
    if how == "insert":
        i = at % len(sdp)
        return sdp[:i] + (char or "é") + sdp[i:]
    if how == "lf_only":
        return sdp.replace("\r\n", "\n")
    if how == "header_only":
        return join(header, [])
    return sdp
