"""The :class:`~telepresence.store.Store` on Redis, so every process of a centre sees the same state.

Keys, under a prefix (``tp:`` by default) so a database can hold other things too:

- ``{prefix}ticket:{ticket}``: a rejoin record, JSON, expiring with Redis's own TTL;
- ``{prefix}chat:{conversation}``: a list of JSON messages, oldest first, trimmed to ``keep``;
- ``{prefix}history:{customer}``: a list of JSON entries, newest last, trimmed to ``keep``;
- ``{prefix}history-served``: a sorted set of customers by when they were last served
  (``{prefix}history-seq``, a counter, gives the order: clocks differ between machines),
  trimmed to ``history_customers`` with the histories of those dropped.

Each operation is one transaction (MULTI or a Lua script), so a process dying mid-call or
two processes writing at once never leave a list untrimmed or a history unlisted. Values go
through JSON both ways: what comes out is a copy, as with :class:`MemoryStore`.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from telepresence.store import CHAT_KEEP, HISTORY_CUSTOMERS, Json

# KEYS: history list, served set, sequence. ARGV: entry, keep, customer, bound, history prefix.
# Appends, trims, marks the customer most recently served, then forgets the least recent
# customers past the bound: all or nothing.
_ADD_HISTORY = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[3])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
    local dropped = redis.call('ZPOPMIN', KEYS[2], excess)
    for i = 1, #dropped, 2 do
        redis.call('DEL', ARGV[5] .. dropped[i])
    end
end
return 0
"""


class RedisStore:
    """Tickets, chat and history in Redis. The client is the caller's: :meth:`close` leaves it open."""

    def __init__(
        self, client: Redis, prefix: str = "tp:", *, history_customers: int = HISTORY_CUSTOMERS
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._history_customers = history_customers
        self._add_history = client.register_script(_ADD_HISTORY)

    async def put_ticket(self, ticket: str, record: Json, ttl_s: float) -> None:
        key = self._key("ticket", ticket)
        if ttl_s <= 0:  # already expired, as MemoryStore would treat it
            await self._redis.delete(key)
            return
        await self._redis.set(key, _dump(record), px=max(1, round(ttl_s * 1000)))

    async def get_ticket(self, ticket: str) -> Json | None:
        raw = await self._redis.get(self._key("ticket", ticket))
        return None if raw is None else json.loads(raw)

    async def delete_ticket(self, ticket: str) -> None:
        await self._redis.delete(self._key("ticket", ticket))

    async def append_chat(self, conversation_id: str, entry: Json, keep: int = CHAT_KEEP) -> None:
        key = self._key("chat", conversation_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, _dump(entry))
            pipe.ltrim(key, -keep, -1)
            await pipe.execute()

    async def get_chat(self, conversation_id: str) -> list[Json]:
        return _loads(await self._redis.lrange(self._key("chat", conversation_id), 0, -1))

    async def delete_chat(self, conversation_id: str) -> None:
        await self._redis.delete(self._key("chat", conversation_id))

    async def add_history(self, customer_id: str, entry: Json, keep: int = 20) -> None:
        await self._add_history(
            keys=[
                self._key("history", customer_id),
                self._prefix + "history-served",
                self._prefix + "history-seq",
            ],
            args=[_dump(entry), keep, customer_id, self._history_customers, self._prefix + "history:"],
        )

    async def get_history(self, customer_id: str) -> list[Json]:
        return _loads(await self._redis.lrange(self._key("history", customer_id), 0, -1))

    async def close(self) -> None:
        pass  # the client belongs to whoever opened it (and may serve others)

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"


def _dump(value: Json) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(raws: list[Any]) -> list[Json]:
    return [json.loads(raw) for raw in raws]
