"""Values only known at run time, and how the fuzzer damages them.

A real token, this socket's ticket, the offer just received, a real SDP offer: strategies
draw them as :class:`Ref` placeholders (what to use, how to break it), so they stay pure
and examples replay; the runner puts the real, damaged value in with :func:`resolve` and
:func:`lookup` just before it sends the frame.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from tests.fuzz.sdp_damage import damage_sdp

if typing.TYPE_CHECKING:
    from tests.fuzz.runner import Fuzzer


@dataclass(frozen=True)
class Ref:
    """A value known only at run time: ``kind`` names it, ``damage`` says how to break it."""

    kind: str  # token, customer_key, ticket, offer_id, call_id, sdp
    variant: str = ""  # which one: e.g. "agent", "operator", "own", "bystander"
    damage: str = "none"
    at: int = 0  # where a damage applies (an index, modulo the length)
    char: str = ""  # what a damage inserts


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


def resolve(value: Any, lookup: typing.Callable[[Ref], Any]) -> Any:
    """``value`` with every :class:`Ref` replaced by ``lookup(ref)``."""
    if isinstance(value, Ref):
        return lookup(value)
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def lookup(fuzzer: Fuzzer, ref: Ref) -> Any:
    """The real value ``ref`` stands for in ``fuzzer``'s current program, damaged as it says."""
    server = fuzzer.server
    bystander_key = fuzzer.bystander_welcome.get("customer_key", "")
    if ref.kind == "token":
        name = {"agent_other_name": f"fz{ref.at % 5}", "agent_nonascii_name": "é😀 Ölga\u0000"}.get(
            ref.variant, "fz-agent"
        )
        if ref.variant == "operator":
            value = server.token("fz-op", role="operator")
        elif ref.variant == "customer_key":
            value = bystander_key
        else:
            ttl = -1 if ref.variant == "expired" else 3600
            value = server.token(name, languages=("en",), ttl=ttl)
        return damage(value, ref.damage, ref.at, ref.char, other=bystander_key)
    if ref.kind == "customer_key":
        own = next(
            (m["customer_key"] for s in fuzzer.socks for m in s.messages if m["type"] == "welcome"), None
        )
        value = {
            "own": own or bystander_key,
            "bystander": bystander_key,
            "minted": server.authority.customer_key(f"cust-fuzz{ref.at % 7}"),
            "agent_token": server.token("fz-agent", languages=("en",)),
        }[ref.variant]
        return damage(value, ref.damage, ref.at, ref.char, other=server.token("x"))
    if ref.kind == "ticket":
        real = fuzzer.bystander_welcome.get("ticket", "")
        if ref.variant == "own":
            own = [m["ticket"] for s in fuzzer.socks for m in s.messages if m["type"] == "welcome"]
            return damage(own[-1] if own else "no-ticket", ref.damage, ref.at, ref.char)
        if ref.variant == "random":
            return f"t{ref.at}"
        forged = damage(real, ref.damage, ref.at, ref.char)
        # Never the bystander's own ticket (white space is trimmed): that would be a takeover.
        return forged if forged.strip() != real else damage(real, "flip", ref.at)
    if ref.kind in ("offer_id", "call_id"):
        kind = "offer" if ref.kind == "offer_id" else "call_started"
        seen = [m[ref.kind] for s in fuzzer.socks for m in s.messages if m["type"] == kind and ref.kind in m]
        value = seen[-1] if seen and ref.variant in ("last", "current") else ref.variant
        return damage(value, ref.damage, ref.at, ref.char)
    if ref.kind == "sdp":
        return damage_sdp(fuzzer.sdp, ref.damage, ref.at, ref.char)
    raise AssertionError(f"unknown reference {ref}")
