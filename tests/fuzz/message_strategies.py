"""Client messages for the fuzzer, read off the pydantic models and then broken.

Structure-aware: every client message type is read off the ``ClientMessage`` union in
telepresence/protocol.py (a new type is fuzzed without touching this package), each
field's values come from its annotation (lengths, patterns, literals, numbers), and then
get broken: wrong types, missing and extra fields, huge and non-ASCII values (encodings,
junk and deep nesting are frame_strategies.py's). Fields whose good values only exist at
run time (tokens, keys, tickets, offer and call ids, SDP) are drawn as
:class:`~tests.fuzz.run_time_values.Ref` placeholders.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from telepresence import protocol
from tests.fuzz.contract import MODELS, type_of
from tests.fuzz.run_time_values import TOKEN_DAMAGES, Ref
from tests.fuzz.sdp_damage import SDP_DAMAGES

NON_ASCII = ["é", "ß", "中", "😀", "\u0000", "\ud800", "\udfff", "\u200b", "\ufeff", "\u202e", "\x7f", "ÿ"]
LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
# Fixed vocabulary of queue labels the fuzzer uses besides random ones (bounds what may linger).
SKILL_WORDS = ["", "billing", "sales"]
LANGUAGE_WORDS = ["", "en", "fr"]
LABEL_WORDS = SKILL_WORDS + LANGUAGE_WORDS + ["aurora", "harbor"]

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
            random_label = st.text(alphabet=LABEL_CHARS, min_size=1, max_size=high)
            return st.sampled_from(LABEL_WORDS) | random_label
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
