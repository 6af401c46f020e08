"""Ids and tickets a new leader can make again, exactly, when it replays its predecessor's steps.

Each is an HMAC of a counter under a key derived from the centre's secret, so tickets stay
unguessable; the counter and a random salt (new whenever a centre starts with no state) are
part of the centre's snapshot, the key never is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from telepresence.auth import Ids


class DerivedIds(Ids):
    """The ``n``-th id or ticket of this centre's history: the same every time it is made."""

    def __init__(self, secret: bytes) -> None:
        self.bind(secret)
        self.salt = secrets.token_hex(8)
        self.counter = 0

    def bind(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"telepresence ids", hashlib.sha256).digest()

    def _next(self) -> bytes:
        self.counter += 1
        return hmac.new(self._key, f"{self.salt}:{self.counter}".encode(), hashlib.sha256).digest()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{self._next()[:8].hex()}"

    def new_ticket(self) -> str:
        return base64.urlsafe_b64encode(self._next()[:24]).decode()

    def __getstate__(self) -> dict[str, Any]:
        return {"salt": self.salt, "counter": self.counter}  # never the key

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.salt, self.counter = state["salt"], state["counter"]
