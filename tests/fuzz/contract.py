"""The fuzzer's oracle: what the contract says a client may get, and what each frame must get.

The error and close codes a client may see are parsed from docs/protocol.md (the
contract), never listed twice. :func:`expect` reads a frame the way the contract does,
written apart from the server's parser: not UTF-8 or not JSON is ``bad_json``, not an
object with a string ``type`` is ``bad_message``, a type no model has is
``unknown_type``, a message the models refuse is ``invalid``, a frame over the size limit
is closed with 1009.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from telepresence import protocol

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


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


# What a fuzzed client may see: never ``internal``, and never 1001 (documented for a
# server that is shutting down: this one is not).
ERROR_CODES = documented_error_codes() - {"internal"}
CLOSE_CODES = documented_close_codes() - {1001}

# ------------------------------------------------------------------ the models

MODELS: tuple[type[protocol._Message], ...] = tuple(get_args(get_args(protocol.ClientMessage)[0]))


def type_of(model: type[protocol._Message]) -> str:
    return get_args(model.model_fields["type"].annotation)[0]


TYPES: tuple[str, ...] = tuple(type_of(m) for m in MODELS)
ENTRY_TYPES = frozenset({"join", "rejoin", "login", "ping"})  # what an anonymous socket may send
_ADAPTER: TypeAdapter[Any] = TypeAdapter(protocol.ClientMessage)

# ------------------------------------------------------------------ what a frame must get


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
