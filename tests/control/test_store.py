"""Both stores keep the same promises: bounded whatever clients do, values copied, tickets expiring."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from telepresence.redis_store import RedisStore
from telepresence.store import CHAT_KEEP, MemoryStore, Store, create_store


@dataclass
class StoreUnderTest:
    make: Callable[..., Store]  # keyword arguments: history_customers
    # Lets ticket TTLs run out: a manual clock for memory, real time for Redis.
    wait: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[StoreUnderTest]:
    if request.param == "memory":
        now = [0.0]

        async def advance(seconds: float) -> None:
            now[0] += seconds

        yield StoreUnderTest(lambda **kw: MemoryStore(lambda: now[0], **kw), advance)
        return
    client = Redis.from_url(request.getfixturevalue("redis_server").url, decode_responses=True)
    try:
        yield StoreUnderTest(lambda **kw: RedisStore(client, **kw), asyncio.sleep)
    finally:
        await client.aclose()


async def test_a_conversation_keeps_its_latest_chat_messages(stores: StoreUnderTest):
    store = stores.make()
    for index in range(CHAT_KEEP + 50):
        await store.append_chat("t", {"text": str(index)})
    chat = await store.get_chat("t")
    assert len(chat) == CHAT_KEEP
    assert chat[0]["text"] == "50" and chat[-1]["text"] == str(CHAT_KEEP + 49)
    await store.delete_chat("t")
    assert await store.get_chat("t") == []


async def test_history_is_kept_for_the_customers_served_most_recently(stores: StoreUnderTest):
    store = stores.make(history_customers=3)
    for customer in ("a", "b", "c"):
        await store.add_history(customer, {"agent": "sam"})
    await store.add_history("a", {"agent": "kim"})  # a is recent again; b is now the oldest
    await store.add_history("d", {"agent": "sam"})
    assert await store.get_history("b") == []
    assert [e["agent"] for e in await store.get_history("a")] == ["sam", "kim"]
    assert await store.get_history("c") and await store.get_history("d")


async def test_a_history_keeps_its_newest_entries_last(stores: StoreUnderTest):
    store = stores.make()
    for index in range(5):
        await store.add_history("a", {"call": index}, keep=3)
    assert [e["call"] for e in await store.get_history("a")] == [2, 3, 4]
    assert await store.get_history("nobody") == []


async def test_a_ticket_lasts_its_ttl_and_each_put_refreshes_it(stores: StoreUnderTest):
    store = stores.make()
    await store.put_ticket("t1", {"customer": "c1"}, ttl_s=0.4)
    await stores.wait(0.25)
    await store.put_ticket("t1", {"customer": "c1", "seen": 2}, ttl_s=0.4)
    await stores.wait(0.25)
    assert await store.get_ticket("t1") == {"customer": "c1", "seen": 2}
    await stores.wait(0.3)
    assert await store.get_ticket("t1") is None
    await store.put_ticket("t2", {"customer": "c2"}, ttl_s=60)
    await store.delete_ticket("t2")
    assert await store.get_ticket("t2") is None


async def test_values_are_copied_in_and_out(stores: StoreUnderTest):
    store = stores.make()
    record = {"customer": "c1", "skills": ["billing"]}
    await store.put_ticket("t", record, ttl_s=60)
    record["skills"].append("changed after the put")
    got = await store.get_ticket("t")
    assert got == {"customer": "c1", "skills": ["billing"]}
    got["skills"].append("changed after the get")  # type: ignore[index]
    assert await store.get_ticket("t") == {"customer": "c1", "skills": ["billing"]}
    entry = {"text": "hi", "meta": {"n": 1}}
    await store.append_chat("c", entry)
    entry["meta"]["n"] = 2  # type: ignore[index]
    assert await store.get_chat("c") == [{"text": "hi", "meta": {"n": 1}}]


async def test_the_redis_store_keeps_its_data_through_a_redis_crash(redis_server):
    client = Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisStore(client)
    await store.put_ticket("t", {"customer": "c1"}, ttl_s=60)
    await store.append_chat("c", {"text": "hello"})
    await store.add_history("c1", {"agent": "sam"})
    await client.aclose()
    redis_server.kill()
    redis_server.start()
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisStore(client)
        assert await store.get_ticket("t") == {"customer": "c1"}
        assert await store.get_chat("c") == [{"text": "hello"}]
        assert await store.get_history("c1") == [{"agent": "sam"}]
    finally:
        await client.aclose()


async def test_stores_under_different_prefixes_do_not_meet(redis_server):
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        one, two = RedisStore(client, prefix="one:"), RedisStore(client, prefix="two:")
        await one.append_chat("c", {"text": "for one"})
        assert await two.get_chat("c") == []
        await one.close()  # leaves the shared client open
        assert await client.ping()
    finally:
        await client.aclose()


async def test_create_store_builds_a_redis_store_when_given_a_client(redis_server):
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert isinstance(create_store("memory", redis=client), RedisStore)
        assert isinstance(create_store("memory"), MemoryStore)
        with pytest.raises(ValueError, match="needs a Redis URL"):
            create_store("redis")
    finally:
        await client.aclose()
