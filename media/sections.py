"""The media sections each role's browser offers: the one table the web client, the server and
docs/protocol.md ("WebRTC") share.

The server maps a browser's m-sections by position (aiortc has no other stable handle on
them), so the order is the contract. The web client builds its transceivers from this table
(served as JSON at ``/static/js/sections.json``), the server finds a section by its name here
rather than by a number, and a test checks the docs' table against this one.

Pure data and pure functions: no aiortc, no asyncio, no ``telepresence``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

Kind = Literal["audio", "video"]
Direction = Literal["sendrecv", "sendonly", "recvonly"]

# What a browser needs before it offers a section at all; the words are the docs'.
NEEDS: Mapping[str, str] = {"screen_capture": "only when the browser can share a screen"}


@dataclass(frozen=True)
class Section:
    """One m-section of a role's offer, as the browser sees it.

    Attributes:
        name: stable, unique within the role: what the server and the client look it up by.
        kind: "audio" or "video".
        direction: the browser's transceiver direction.
        sends: what the browser sends on it (None: nothing).
        receives: what the server sends back on it (None: nothing).
        optional: the server answers offers that stop before this section. Sections are
            mapped by position, so only a tail of optional sections can be left out.
        direction_without_track: the direction when the browser has no track for it at
            offer time (None: ``direction`` regardless).
        needs: a browser ability (a key of :data:`NEEDS`) without which the section is left out.
    """

    name: str
    kind: Kind
    direction: Direction
    sends: str | None
    receives: str | None
    optional: bool = False
    direction_without_track: Direction | None = None
    needs: str | None = None


SECTIONS: Mapping[str, tuple[Section, ...]] = {
    "agent": (
        Section(
            "mic", "audio", "sendrecv", sends="the agent's microphone", receives="the customer's microphone"
        ),
        Section(
            "camera",
            "video",
            "sendrecv",
            sends="the agent's camera",
            receives=(
                "a preview of exactly what the customer sees"
                " (held while that is the agent's own camera as it came: `preview` says so)"
            ),
        ),
        # From the start, so that sharing is a replaceTrack, never a renegotiation.
        Section(
            "screen",
            "video",
            "sendonly",
            sends="the agent's screen, set with `replaceTrack`",
            receives=None,
            optional=True,
        ),
        Section(
            "customer_camera",
            "video",
            "recvonly",
            sends=None,
            receives="the customer's camera",
            optional=True,
        ),
        Section(
            "customer_screen",
            "video",
            "recvonly",
            sends=None,
            receives="the customer's screen",
            optional=True,
        ),
    ),
    "customer": (
        Section(
            "mic", "audio", "sendrecv", sends="the customer's microphone", receives="the agent's microphone"
        ),
        # Receive-only with no camera: turning one on later offers again.
        Section(
            "camera",
            "video",
            "sendrecv",
            sends="the customer's camera, when on",
            receives="the composite",
            direction_without_track="recvonly",
        ),
        Section(
            "screen",
            "video",
            "sendonly",
            sends="the customer's screen, set with `replaceTrack`",
            receives=None,
            optional=True,
            needs="screen_capture",
        ),
    ),
    # The studio (see "Avatar host"): the operator's face and voice drive the avatar on the server.
    "operator": (
        Section(
            "mic",
            "audio",
            "sendrecv",
            sends="the operator's microphone (drives the avatar's mouth)",
            receives=None,
        ),
        Section(
            "camera",
            "video",
            "sendrecv",
            sends="the operator's camera (drives the avatar's face)",
            receives="the live avatar preview",
        ),
    ),
}

ROLES: tuple[str, ...] = tuple(SECTIONS)


class SectionMismatch(ValueError):
    """An offer's sections do not follow the role's table (wrong kind, too many, too few)."""


def sections_of(role: str) -> tuple[Section, ...]:
    """The role's sections in offer order. Raises KeyError for a role that negotiates no media."""
    return SECTIONS[role]


def section(role: str, name: str) -> Section:
    """The role's section called ``name`` (KeyError if it has none)."""
    for candidate in SECTIONS[role]:
        if candidate.name == name:
            return candidate
    raise KeyError(f"{role} has no section {name!r}")


def position(role: str, name: str) -> int:
    """The section's 0-based place among all the m-sections of the role's offer."""
    return SECTIONS[role].index(section(role, name))


def position_of_kind(role: str, name: str) -> int:
    """The section's 0-based place among the role's sections of the same kind.

    This is the index into the ``audio`` or ``video`` list that ``media.answer.receive_offer``
    returns: ``video[position_of_kind("agent", "screen")]`` is the agent's screen.
    """
    wanted = section(role, name)
    return [s for s in SECTIONS[role] if s.kind == wanted.kind].index(wanted)


class HasKind(Protocol):
    @property
    def kind(self) -> str: ...


T = TypeVar("T", bound=HasKind)


def match(role: str, transceivers: Sequence[T]) -> dict[str, T]:
    """Name an offer's transceivers (in m-line order, as an answering aiortc peer lists them).

    Returns ``{section name: transceiver}`` for the sections the offer has. Raises
    :class:`SectionMismatch` when a kind differs from the table, when a required section is
    missing, or when the offer has more sections than the role.
    """
    table = SECTIONS[role]
    if len(transceivers) > len(table):
        raise SectionMismatch(f"a {role} offers at most {len(table)} media sections, not {len(transceivers)}")
    named: dict[str, T] = {}
    for number, (expected, transceiver) in enumerate(zip(table, transceivers, strict=False), start=1):
        if transceiver.kind != expected.kind:
            raise SectionMismatch(
                f"a {role}'s section {number} ({expected.name}) is {expected.kind}, not {transceiver.kind}"
            )
        named[expected.name] = transceiver
    missing = [s.name for s in table[len(transceivers) :] if not s.optional]
    if missing:
        raise SectionMismatch(f"a {role}'s offer lacks its {', '.join(missing)} section")
    return named


# ---------------------------------------------------------------- for the browser and the docs


def as_json() -> dict[str, list[dict[str, object]]]:
    """The table as the web client reads it: ``{role: [section, ...]}``, every field spelled out."""
    return {role: [dataclasses.asdict(s) for s in table] for role, table in SECTIONS.items()}


DOCS_HEADER = (
    "side",
    "#",
    "name",
    "kind",
    "browser direction",
    "the browser sends",
    "the browser receives",
    "optional",
)


def docs_rows() -> list[tuple[str, ...]]:
    """The cells of docs/protocol.md's table of sections, row by row (without the header)."""
    rows: list[tuple[str, ...]] = []
    for role, table in SECTIONS.items():
        for number, s in enumerate(table, start=1):
            direction: str = s.direction
            if s.direction_without_track:
                direction += f", {s.direction_without_track} with no track"
            optional = "yes" if s.optional else "no"
            if s.needs:
                optional += f", {NEEDS[s.needs]}"
            sends, receives = s.sends or "–", s.receives or "–"
            rows.append((role, str(number), f"`{s.name}`", s.kind, direction, sends, receives, optional))
    return rows


def docs_table() -> str:
    """The Markdown table for docs/protocol.md ("WebRTC"): ``python -m media.sections``."""
    lines = [DOCS_HEADER, ("---",) * len(DOCS_HEADER), *docs_rows()]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--json"]:
        print(json.dumps(as_json(), indent=2))
    else:
        print(docs_table())
