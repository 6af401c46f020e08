"""Avatar spec files: a brand's look and guardrails, in TOML or JSON.

A spec names colours (``#rrggbb``), shape styles, optional images (paths relative
to the spec file), the expressions and gestures the brand allows, and a safe zone
(fractions of the frame: a logo, say) that the avatar and captions never cover.
Every field has a default, so a spec may be as short as a name and one colour.

A malformed spec raises :class:`SpecError` naming the field (or the line, for a
syntax error); nothing is half-applied, so the caller keeps its previous look.
Example (``looks/aurora.toml`` and ``looks/harbor.json`` ship with the package)::

    name = "Aurora"
    [colors]
    skin = "#f1c7a5"
    outfit = "#e4572e"
    [style]
    hair = "bob"
    [safe_zone]
    x = 0.80
    y = 0.04
    width = 0.17
    height = 0.14
    [guardrails]
    expressions = ["neutral", "smile", "surprise"]
    gestures = ["nod", "wave"]
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from media.avatar.rig import EXPRESSIONS, GESTURES

LOOKS_DIR = Path(__file__).parent / "looks"
HAIR_STYLES = ("bob", "short", "long", "bun")
OUTFIT_STYLES = ("crew", "collar", "blazer")

DEFAULT_COLORS: dict[str, str] = {
    "background": "#22304f",
    "background_accent": "#3a4f7a",
    "skin": "#f0c6a2",
    "skin_shadow": "#d8a482",
    "hair": "#3b2519",
    "brows": "#2e1c12",
    "eyes": "#4a6fa5",
    "lips": "#c25b5b",
    "mouth": "#4a1820",
    "outfit": "#e4572e",
    "outfit_accent": "#f5efe6",
    "caption_background": "#101521",
    "caption_text": "#ffffff",
}

BGR = tuple[int, int, int]


class SpecError(ValueError):
    """A spec that cannot be used. ``field`` (dotted) or ``line`` says where; the message says why."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        where = f"{field}: " if field else f"line {line}: " if line else ""
        super().__init__(f"{where}{message}")
        self.field = field
        self.line = line


@dataclass(frozen=True, slots=True)
class SafeZone:
    """A rectangle in fractions of the frame (0..1) that nothing of the avatar may cover."""

    x: float
    y: float
    width: float
    height: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` on a ``width`` x ``height`` frame, widened to even pixels."""
        x0 = int(self.x * width) // 2 * 2
        y0 = int(self.y * height) // 2 * 2
        x1 = min(width, -(-int(np.ceil((self.x + self.width) * width)) // 2) * 2)
        y1 = min(height, -(-int(np.ceil((self.y + self.height) * height)) // 2) * 2)
        return x0, y0, x1, y1


@dataclass(frozen=True)
class AvatarSpec:
    """A parsed, validated look. Colours are BGR tuples; images are BGR (or BGRA) arrays."""

    name: str = "Avatar"
    colors: dict[str, BGR] = field(default_factory=lambda: {k: _hex(v) for k, v in DEFAULT_COLORS.items()})
    hair: str = "bob"
    outfit: str = "crew"
    background_image: np.ndarray | None = None
    logo_image: np.ndarray | None = None
    safe_zone: SafeZone | None = None
    expressions: frozenset[str] = frozenset(EXPRESSIONS)
    gestures: frozenset[str] = frozenset(GESTURES)
    source: str = ""

    def allows_expression(self, name: str) -> bool:
        return name in self.expressions

    def allows_gesture(self, name: str) -> bool:
        return name in self.gestures


def _hex(value: str) -> BGR:
    r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r


_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_TOP_KEYS = {"name", "colors", "style", "images", "safe_zone", "guardrails"}


def parse_spec(data: dict[str, Any], *, base_dir: Path | None = None, source: str = "") -> AvatarSpec:
    """Validate a decoded spec (a dict from TOML or JSON) into an :class:`AvatarSpec`.

    Raises:
        SpecError: naming the first bad field.
    """
    if not isinstance(data, dict):
        raise SpecError("a spec is a table (TOML) or an object (JSON)")
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(f"unknown field (use {sorted(_TOP_KEYS)})", field=str(key))
    name = data.get("name", "Avatar")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("must be a non-empty string", field="name")

    colors = {k: _hex(v) for k, v in DEFAULT_COLORS.items()}
    for key, value in _table(data, "colors").items():
        where = f"colors.{key}"
        if key not in DEFAULT_COLORS:
            raise SpecError(f"unknown colour (use {sorted(DEFAULT_COLORS)})", field=where)
        if not isinstance(value, str) or not _HEX.match(value):
            raise SpecError(f"expected a colour like '#1a2b3c', got {value!r}", field=where)
        colors[key] = _hex(value)

    style = _table(data, "style")
    _only(style, {"hair", "outfit"}, "style")
    hair = _choice(style.get("hair", "bob"), HAIR_STYLES, "style.hair")
    outfit = _choice(style.get("outfit", "crew"), OUTFIT_STYLES, "style.outfit")

    images = _table(data, "images")
    _only(images, {"background", "logo"}, "images")
    background = _image(images.get("background"), "images.background", base_dir, alpha=False)
    logo = _image(images.get("logo"), "images.logo", base_dir, alpha=True)

    zone = None
    if "safe_zone" in data:
        raw = _table(data, "safe_zone")
        _only(raw, {"x", "y", "width", "height"}, "safe_zone")
        values = {}
        for key in ("x", "y", "width", "height"):
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise SpecError(
                    f"expected a fraction of the frame between 0 and 1, got {value!r}",
                    field=f"safe_zone.{key}",
                )
            values[key] = float(value)
        if values["width"] <= 0 or values["height"] <= 0:
            raise SpecError("width and height must be > 0", field="safe_zone")
        if values["x"] + values["width"] > 1 or values["y"] + values["height"] > 1:
            raise SpecError(
                "the rectangle must lie inside the frame (x + width <= 1, y + height <= 1)", field="safe_zone"
            )
        if values["width"] * values["height"] > 0.25:
            raise SpecError("a safe zone may cover at most a quarter of the frame", field="safe_zone")
        zone = SafeZone(**values)
    if logo is not None and zone is None:
        raise SpecError("a logo is drawn inside the safe zone: give [safe_zone] too", field="images.logo")

    guard = _table(data, "guardrails")
    _only(guard, {"expressions", "gestures"}, "guardrails")
    expressions = _names(guard.get("expressions", list(EXPRESSIONS)), EXPRESSIONS, "guardrails.expressions")
    if "neutral" not in expressions:
        expressions = expressions | {"neutral"}  # the avatar can always go back to neutral
    gestures = _names(guard.get("gestures", list(GESTURES)), GESTURES, "guardrails.gestures")
    return AvatarSpec(
        name=name.strip(),
        colors=colors,
        hair=hair,
        outfit=outfit,
        background_image=background,
        logo_image=logo,
        safe_zone=zone,
        expressions=expressions,
        gestures=gestures,
        source=source,
    )


def loads_spec(text: str, *, format: str = "toml", base_dir: Path | None = None) -> AvatarSpec:
    """Parse a spec from text, ``format`` "toml" or "json".

    Raises:
        SpecError: with the line of a syntax error, or the bad field.
    """
    if format == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            raise SpecError(f"not valid TOML: {exc}", line=int(match.group(1)) if match else None) from None
    elif format == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    else:
        raise ValueError(f"unknown spec format {format!r}: use 'toml' or 'json'")
    return parse_spec(data, base_dir=base_dir)


def load_spec(path: str | Path) -> AvatarSpec:
    """Load a spec file (``.toml`` or ``.json``); images are found relative to it.

    A bare name such as ``"aurora"`` loads a shipped look (see :func:`shipped_looks`).

    Raises:
        SpecError: a missing or unreadable file, a syntax error (with its line) or a bad field.
    """
    path = Path(path)
    if path.suffix == "" and not path.exists() and path.name in shipped_looks():
        path = shipped_looks()[path.name]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc}") from None
    fmt = "json" if path.suffix.lower() == ".json" else "toml"
    spec = loads_spec(text, format=fmt, base_dir=path.parent)
    return replace(spec, source=str(path))


def shipped_looks() -> dict[str, Path]:
    """The looks that ship with the package, by name (file stem)."""
    return {p.stem: p for p in sorted(LOOKS_DIR.iterdir()) if p.suffix in (".toml", ".json")}


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError("must be a table (TOML) or an object (JSON)", field=key)
    return value


def _only(table: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"unknown field (use {sorted(allowed)})", field=f"{prefix}.{key}")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise SpecError(f"expected one of {list(choices)}, got {value!r}", field=where)
    return value


def _names(value: Any, known: dict[str, Any], where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("expected a list of names", field=where)
    for name in value:
        if name not in known:
            raise SpecError(f"unknown name {name!r} (known: {sorted(known)})", field=where)
    return frozenset(value)


def _image(value: Any, where: str, base_dir: Path | None, *, alpha: bool) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError("expected a path to an image file", field=where)
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if alpha else cv2.IMREAD_COLOR)
    if image is None:
        raise SpecError(f"cannot read image {str(path)!r}", field=where)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image
