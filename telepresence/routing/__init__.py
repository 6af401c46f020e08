"""Routing: pure matchmaking of customers and agents (no I/O, time passed in)."""

from telepresence.routing.changes import LineMove, StatusChanges
from telepresence.routing.errors import RoutingError
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
from telepresence.routing.matchmaker import Matchmaker
from telepresence.routing.queues import GENERAL, QueueKey, QueueRegister
from telepresence.routing.records import AgentState, CustomerState, CustomerStatus, QueueStats

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
    "LineMove",
    "Matchmaker",
    "OfferMade",
    "OfferWithdrawn",
    "Paired",
    "QueueKey",
    "QueueRegister",
    "QueueStats",
    "RoutingError",
    "StatusChanges",
    "expected_wait",
]
