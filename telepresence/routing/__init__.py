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
    AgentState,
    CustomerState,
    CustomerStatus,
    Matchmaker,
    QueueStats,
    RoutingError,
)
from telepresence.routing.queues import GENERAL, QueueKey, QueueRegister

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
    "QueueRegister",
    "QueueStats",
    "RoutingError",
    "expected_wait",
]
