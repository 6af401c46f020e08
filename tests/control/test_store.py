"""The in-memory store stays bounded whatever clients do."""

from __future__ import annotations

from telepresence.store import CHAT_KEEP, MemoryStore


async def test_a_conversation_keeps_its_latest_chat_messages():
    store = MemoryStore()
    for index in range(CHAT_KEEP + 50):
        await store.append_chat("t", {"text": str(index)})
    chat = await store.get_chat("t")
    assert len(chat) == CHAT_KEEP
    assert chat[0]["text"] == "50" and chat[-1]["text"] == str(CHAT_KEEP + 49)


async def test_history_is_kept_for_the_customers_served_most_recently():
    store = MemoryStore(history_customers=3)
    for customer in ("a", "b", "c"):
        await store.add_history(customer, {"agent": "sam"})
    await store.add_history("a", {"agent": "kim"})  # a is recent again; b is now the oldest
    await store.add_history("d", {"agent": "sam"})
    assert await store.get_history("b") == []
    assert [e["agent"] for e in await store.get_history("a")] == ["sam", "kim"]
    assert await store.get_history("c") and await store.get_history("d")
