"""Routing: pure matchmaking of customers and agents (no I/O, time passed in)."""

from telepresence.routing.estimate import HandleTimes, expected_wait
from telepresence.routing.events import (
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    Event,
    OfferMade,
    OfferWithdrawn,
    Paired,
)
from telepresence.routing.matchmaker import (
    GENERAL,
    AgentState,
    CustomerState,
    CustomerStatus,
    Matchmaker,
    QueueKey,
    QueueStats,
    RoutingError,
)

__all__ = [
    "GENERAL",
    "AgentSetAway",
    "AgentState",
    "CallEnded",
    "ChoiceOffered",
    "CustomerState",
    "CustomerStatus",
    "Event",
    "HandleTimes",
    "Matchmaker",
    "OfferMade",
    "OfferWithdrawn",
    "Paired",
    "QueueKey",
    "QueueStats",
    "RoutingError",
    "expected_wait",
]
