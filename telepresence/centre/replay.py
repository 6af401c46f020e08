"""What a new leader needs to replay its predecessor's steps without doing anything twice.

A step is recorded as the inbox entries it applied, the time it used, whether timers fell
due and which doors it found gone: everything else a decision depends on is the centre's
state (ids come from :class:`~telepresence.centre.ids.DerivedIds`, whose counter is state).
Replaying sends nothing (the messages went out with the step's commit) and writes nothing
to the store (the step wrote it): :class:`ReplayStore` mutes writes while replaying.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from telepresence.store import CHAT_KEEP, Json, Store


@dataclass
class StepRecord:
    """One committed step of a leader."""

    to: str  # the last inbox entry applied by the end of the step ("0-0": none yet)
    now: float  # the clock every decision of the step read
    due: bool = False  # timers were run (offers, grace periods, wrap-up)
    gone: list[str] = field(default_factory=list)  # doors ("node#incarnation") found gone

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> StepRecord:
        return cls(str(raw["to"]), float(raw["now"]), bool(raw.get("due")), list(raw.get("gone", [])))


class ReplayStore:
    """The centre's store, with writes muted while a new leader replays steps already committed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.muted = False

    async def put_ticket(self, ticket: str, record: Json, ttl_s: float) -> None:
        if not self.muted:
            await self._store.put_ticket(ticket, record, ttl_s)

    async def get_ticket(self, ticket: str) -> Json | None:
        return await self._store.get_ticket(ticket)

    async def delete_ticket(self, ticket: str) -> None:
        if not self.muted:
            await self._store.delete_ticket(ticket)

    async def append_chat(self, conversation_id: str, entry: Json, keep: int = CHAT_KEEP) -> None:
        if not self.muted:
            await self._store.append_chat(conversation_id, entry, keep)

    async def get_chat(self, conversation_id: str) -> list[Json]:
        return await self._store.get_chat(conversation_id)

    async def delete_chat(self, conversation_id: str) -> None:
        if not self.muted:
            await self._store.delete_chat(conversation_id)

    async def add_history(self, customer_id: str, entry: Json, keep: int = 20) -> None:
        if not self.muted:
            await self._store.add_history(customer_id, entry, keep)

    async def get_history(self, customer_id: str) -> list[Json]:
        return await self._store.get_history(customer_id)

    async def close(self) -> None:
        pass  # the node owns the store
