"""Signed tokens for staff (agents, operators, viewers, supervisors), keys for returning customers,
tickets for tabs.

A token is ``base64url(json claims) "." base64url(HMAC-SHA256(secret, claims))``: small,
stateless, checkable by every server process that shares the secret. The secret
comes from ``TELEPRESENCE_SECRET`` or is generated on first run and stored with
0600 permissions (:func:`load_or_create_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Role = Literal["agent", "operator", "viewer", "supervisor", "customer"]
STAFF_ROLES = ("agent", "operator")  # who may log in on the WebSocket
# What `telepresence token` mints. A viewer may only watch the host's WHEP stream
# (setting whep_viewer_token_required); it logs in nowhere. A supervisor watches and listens to
# live calls and whispers to their agents (telepresence.supervisor_doors); it logs in nowhere either.
TOKEN_ROLES = ("agent", "operator", "viewer", "supervisor")


class AuthError(Exception):
    """A token that is malformed, forged or expired. The message says which."""


@dataclass(frozen=True)
class Claims:
    name: str
    role: Role
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    expires_at: float | None = None  # unix seconds; None: never (customer keys)
    extra: dict[str, str] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Mints and verifies tokens with one HMAC secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._secret = secret

    def mint(self, claims: Claims) -> str:
        payload = {
            "sub": claims.name,
            "role": claims.role,
            "skills": list(claims.skills),
            "languages": list(claims.languages),
            "exp": claims.expires_at,
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float, *, roles: tuple[str, ...] = STAFF_ROLES) -> Claims:
        """The token's claims, if it is well-formed, signed by us, unexpired and of one of ``roles``."""
        # Tokens are base64url: anything else is malformed before it reaches the byte-wise
        # signature check (compare_digest refuses non-ASCII str, encode("ascii") raises).
        if not token.isascii():
            raise AuthError("the token is malformed")
        body, dot, signature = token.partition(".")
        if not dot or not body or not signature:
            raise AuthError("the token is malformed")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise AuthError("the token's signature is not valid")
        try:
            payload = json.loads(_unb64(body))
            claims = Claims(
                name=str(payload["sub"]),
                role=payload["role"],
                skills=tuple(str(s) for s in payload.get("skills", ())),
                languages=tuple(str(s) for s in payload.get("languages", ())),
                expires_at=_expiry(payload.get("exp")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthError("the token is malformed") from None
        if claims.role not in roles:
            raise AuthError(f"a {claims.role} token cannot be used here")
        if claims.expires_at is not None and now >= claims.expires_at:
            raise AuthError("the token has expired")
        return claims

    def customer_key(self, customer_id: str) -> str:
        """A key that lets a returning browser prove it is ``customer_id`` (kept in localStorage)."""
        return self.mint(Claims(name=customer_id, role="customer"))

    def customer_id_from_key(self, key: str) -> str:
        return self.verify(key, now=0.0, roles=("customer",)).name

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())


def _expiry(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("exp must be a number")
    return float(value)


def new_ticket() -> str:
    """An unguessable ticket that lets a dropped tab rejoin its place or call."""
    return secrets.token_urlsafe(24)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


class Ids:
    """Where the switchboard's new ids and tickets come from: fresh random ones here; a
    sequence a successor can replay on a centre of many processes (telepresence.centre.ids)."""

    def new_id(self, prefix: str) -> str:
        return new_id(prefix)

    def new_ticket(self) -> str:
        return new_ticket()


def load_or_create_secret(env_value: str | None, path: Path) -> bytes:
    """The secret from the environment, else from ``path``, else a new one written there (0600)."""
    if env_value:
        return env_value.encode()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    # O_EXCL: two processes starting at once must not overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


def parse_ttl(text: str) -> float:
    """'8h', '30m', '45s', '2d' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (try 8h, 30m, 45s)") from None
    if value <= 0:
        raise ValueError("a duration must be positive")
    return value
