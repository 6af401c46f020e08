"""The Matchmaker's records: customers, agents and offers with their states, and what it reports.

Plain data with no policy: the policy is :mod:`telepresence.routing.matchmaker`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from telepresence.routing.queues import GENERAL, QueueKey


class CustomerState(enum.Enum):
    WAITING = "waiting"  # in the queue, offered as soon as an agent frees up
    CHOOSING = "choosing"  # returning customer deciding: wait for their agent, or any
    WAITING_FOR_AGENT = "waiting_for_agent"  # held for their last agent until prefer_until
    SUSPENDED = "suspended"  # tab dropped: keeps its place, not offered until it rejoins
    OFFERED = "offered"  # an offer to one agent is pending
    IN_CALL = "in_call"


HELD = (CustomerState.CHOOSING, CustomerState.WAITING_FOR_AGENT)


class AgentState(enum.Enum):
    AVAILABLE = "available"
    AWAY = "away"
    WRAP_UP = "wrap_up"  # after-call work: no offers, but back soon (counts for the wait estimate)


SEATED = (AgentState.AVAILABLE, AgentState.WRAP_UP)  # agents whose seats the estimator counts


@dataclass
class Customer:
    id: str
    key: QueueKey
    place: int
    joined_at: float
    state: CustomerState = CustomerState.WAITING
    last_agent: str | None = None
    prefer_until: float | None = None
    offer_id: str | None = None
    agent_id: str | None = None
    call_started_at: float | None = None
    declined_by: dict[str, float] = field(default_factory=dict)  # agent id -> until


@dataclass
class Agent:
    id: str
    skills: frozenset[str]
    languages: frozenset[str]
    capacity: int
    state: AgentState
    idle_since: float
    customers: set[str] = field(default_factory=set)  # offered or in a call
    misses: int = 0

    def serves(self, key: QueueKey) -> bool:
        skill_ok = key.skill == GENERAL or key.skill in self.skills
        language_ok = key.language == GENERAL or not self.languages or key.language in self.languages
        return skill_ok and language_ok

    @property
    def free_seats(self) -> int:
        if self.state is not AgentState.AVAILABLE:
            return 0
        return max(0, self.capacity - len(self.customers))


@dataclass
class Offer:
    id: str
    customer_id: str
    agent_id: str
    expires_at: float


@dataclass(frozen=True)
class CustomerStatus:
    """What a customer is told about their wait."""

    customer_id: str
    state: CustomerState
    position: int | None  # 1 = next; None once offered or in a call
    expected_wait_s: float | None  # None: no agent online to estimate from
    at_capacity: bool = False  # the CPU budget, not (only) the agents, holds them back now


@dataclass(frozen=True)
class QueueStats:
    key: QueueKey
    waiting: int
    longest_wait_s: float
    answered: int
    answered_in_target: int
    abandoned: int

    @property
    def service_level(self) -> float | None:
        """Share of answered customers answered within the target time."""
        return self.answered_in_target / self.answered if self.answered else None
