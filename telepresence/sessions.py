"""Who is connected: customer and agent sessions, and the connection protocol they speak through.

Sessions are the switchboard's live view of a conversation; what must outlive a
socket (tickets, transcripts, history) lives in the :mod:`telepresence.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from telepresence.auth import Claims
from telepresence.calls import Call
from telepresence.routing import QueueKey

Message = dict[str, Any]


class Connection(Protocol):
    """One client socket as the switchboard sees it."""

    id: str

    def send(self, message: Message) -> None:
        """Queue a message; never blocks."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket after what is already queued."""


@dataclass
class CustomerSession:
    customer_id: str
    ticket: str
    name: str
    topic: str
    key: QueueKey
    conn: Connection | None
    call_id: str | None = None
    dropped_until: float | None = None
    last_status: Message | None = None
    lobby: Call | None = None  # media while waiting: the avatar host greets (see media_control)

    def public(self) -> Message:
        """What an agent may see of this customer."""
        return {
            "name": self.name,
            "topic": self.topic,
            "skill": self.key.skill,
            "language": self.key.language,
        }


@dataclass
class AgentSession:
    claims: Claims
    conn: Connection
    auto_answer: bool = False
    wants_available: bool = False
    wrap_up: dict[str, float] = field(default_factory=dict)  # call id -> until
    offers: set[str] = field(default_factory=set)
    dropped_until: float | None = None  # socket gone: calls kept until then for a reload

    @property
    def agent_id(self) -> str:
        return self.claims.name


def history_summary(history: list[Message]) -> Message:
    """What an agent is told of a customer's past calls (and notes) with an offer."""
    calls = [h for h in history if "ended_at" in h]
    notes = [h["notes"] for h in history if h.get("notes")]
    return {
        "returning": bool(calls),
        "calls": len(calls),
        "last_agent": calls[-1]["agent"] if calls else None,
        "last_topic": calls[-1].get("topic") if calls else None,
        "notes": notes[-3:],
    }
