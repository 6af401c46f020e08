"""Where state that outlives a socket lives: tickets, transcripts, customer history.

The :class:`Store` protocol is async and deals only in JSON-compatible values (no
live objects), so a Redis store can stand behind the same interface when several
server processes share one queue. :class:`MemoryStore` is the embedded default;
:class:`~telepresence.redis_store.RedisStore` the shared one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

Json = dict[str, Any]


# Bounds that keep one process's memory flat whatever clients do: a conversation keeps its
# latest chat messages (a flood fills this in seconds, then replaces its own), and history is
# kept for the customers seen most recently.
CHAT_KEEP = 200
HISTORY_CUSTOMERS = 50_000


class Store(Protocol):
    async def put_ticket(self, ticket: str, record: Json, ttl_s: float) -> None:
        """Keep a tab's rejoin record for ``ttl_s`` seconds (refreshed on every put)."""

    async def get_ticket(self, ticket: str) -> Json | None: ...

    async def delete_ticket(self, ticket: str) -> None: ...

    async def append_chat(self, conversation_id: str, entry: Json, keep: int = CHAT_KEEP) -> None:
        """Add ``entry``; only the latest ``keep`` messages of a conversation are kept."""

    async def get_chat(self, conversation_id: str) -> list[Json]: ...

    async def delete_chat(self, conversation_id: str) -> None: ...

    async def add_history(self, customer_id: str, entry: Json, keep: int = 20) -> None:
        """Record a finished call in a customer's history (newest last, at most ``keep``)."""

    async def get_history(self, customer_id: str) -> list[Json]: ...

    async def close(self) -> None: ...


class MemoryStore:
    """The in-process store. Values are deep-copied in and out, as a remote store would."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, history_customers: int = HISTORY_CUSTOMERS
    ) -> None:
        self._history_customers = history_customers
        self._clock = clock
        self._tickets: dict[str, tuple[float, Json]] = {}
        self._chats: dict[str, list[Json]] = {}
        self._history: dict[str, list[Json]] = {}
        self._last_sweep = clock()

    async def put_ticket(self, ticket: str, record: Json, ttl_s: float) -> None:
        self._expire()
        self._tickets[ticket] = (self._clock() + ttl_s, copy.deepcopy(record))

    async def get_ticket(self, ticket: str) -> Json | None:
        self._expire()
        found = self._tickets.get(ticket)
        if found is None or found[0] <= self._clock():
            return None
        return copy.deepcopy(found[1])

    async def delete_ticket(self, ticket: str) -> None:
        self._tickets.pop(ticket, None)

    async def append_chat(self, conversation_id: str, entry: Json, keep: int = CHAT_KEEP) -> None:
        chat = self._chats.setdefault(conversation_id, [])
        chat.append(copy.deepcopy(entry))
        del chat[:-keep]

    async def get_chat(self, conversation_id: str) -> list[Json]:
        return copy.deepcopy(self._chats.get(conversation_id, []))

    async def delete_chat(self, conversation_id: str) -> None:
        self._chats.pop(conversation_id, None)

    async def add_history(self, customer_id: str, entry: Json, keep: int = 20) -> None:
        # Re-inserted so the dict's order is least recently served first.
        history = self._history.pop(customer_id, [])
        history.append(copy.deepcopy(entry))
        del history[:-keep]
        self._history[customer_id] = history
        if len(self._history) > self._history_customers:
            del self._history[next(iter(self._history))]

    async def get_history(self, customer_id: str) -> list[Json]:
        return copy.deepcopy(self._history.get(customer_id, []))

    async def close(self) -> None:
        pass

    def _expire(self) -> None:
        # A sweep at most once a second keeps puts O(1) with many tickets.
        now = self._clock()
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        for ticket in [t for t, (until, _) in self._tickets.items() if until <= now]:
            del self._tickets[ticket]


def create_store(kind: str, redis: Redis | None = None) -> Store:
    """The store for these settings: on ``redis`` when the centre has one, whatever ``kind`` says."""
    if redis is not None:
        from telepresence.redis_store import RedisStore

        return RedisStore(redis)
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        raise ValueError("store 'redis' needs a Redis URL (redis_url, --redis)")
    raise ValueError(f"unknown store {kind!r} (this version has: memory, redis)")
