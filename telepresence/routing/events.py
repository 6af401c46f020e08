"""What the Matchmaker tells its shell. Plain immutable records: no live objects."""

from dataclasses import dataclass


@dataclass(frozen=True)
class OfferMade:
    """A customer is offered to an agent, who must accept before ``expires_at``."""

    offer_id: str
    customer_id: str
    agent_id: str
    expires_at: float
    returning: bool


@dataclass(frozen=True)
class OfferWithdrawn:
    """A pending offer is gone.

    ``reason``: ``declined``, ``timeout``, ``agent_away``, ``agent_left`` or ``customer_left``.
    """

    offer_id: str
    customer_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True)
class Paired:
    """The agent accepted: the call starts."""

    customer_id: str
    agent_id: str
    offer_id: str
    waited_s: float


@dataclass(frozen=True)
class ChoiceOffered:
    """A returning customer's last agent is busy: wait for them, or take the next available?"""

    customer_id: str
    agent_id: str
    agent_wait_s: float | None
    any_wait_s: float | None


@dataclass(frozen=True)
class AgentSetAway:
    """An agent was set away by the matchmaker (``missed_offers``)."""

    agent_id: str
    reason: str


@dataclass(frozen=True)
class CallEnded:
    """A call is over; ``requeued`` when the customer went back to the queue (agent dropped)."""

    customer_id: str
    agent_id: str
    reason: str
    requeued: bool


Event = OfferMade | OfferWithdrawn | Paired | ChoiceOffered | AgentSetAway | CallEnded
