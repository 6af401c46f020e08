"""Sockets that close, and the grace periods that wait for them to come back.

A customer whose socket closes keeps their place (or their call) for
``rejoin_grace_s``; an agent in calls keeps them for ``agent_grace_s``, away from
new offers meanwhile; an agent with no call goes at once. Those periods, and each
agent's wrap-up after a call, end at deadlines the switchboard's timer task reads
from :meth:`GracePeriods.deadlines` and expires through :meth:`GracePeriods.expire`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telepresence.call_lifecycle import CallLifecycle
from telepresence.config import Settings
from telepresence.directory import Directory
from telepresence.routing import Matchmaker
from telepresence.sessions import AgentSession, Connection, CustomerSession

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)  # a part of the switchboard, equal only to itself
class GracePeriods:
    """Drops of customers and agents, their grace periods, wrap-up deadlines and agents leaving."""

    settings: Settings
    matchmaker: Matchmaker
    directory: Directory
    lifecycle: CallLifecycle

    async def socket_closed(self, conn: Connection, now: float) -> None:
        """A socket closed. Agents drop at once; customers keep their place for a grace period."""
        session = self.directory.by_conn.pop(conn.id, None)
        if (
            isinstance(session, AgentSession)
            and self.directory.staff(session.claims).get(session.agent_id) is session
        ):
            await self._agent_dropped(session, now)
        elif isinstance(session, CustomerSession) and session.conn is conn:
            session.conn = None
            session.dropped_until = now + self.settings.rejoin_grace_s
            logger.info(
                "customer %s dropped; keeping place for %.0fs",
                session.customer_id,
                self.settings.rejoin_grace_s,
            )
            if session.call_id:
                self.directory.send_agent_of(
                    session, {"type": "peer_status", "call_id": session.call_id, "status": "reconnecting"}
                )
            else:
                await self.lifecycle.apply(self.matchmaker.suspend(session.customer_id, now))

    async def _agent_dropped(self, session: AgentSession, now: float) -> None:
        """An agent's socket closed: calls wait a grace period for a reload, offers go elsewhere."""
        if session.claims.role != "agent" or not self.matchmaker.has_agent(session.agent_id):
            self.directory.staff(session.claims).pop(session.agent_id, None)
            return
        if self.directory.calls_of(session) and self.settings.agent_grace_s > 0:
            logger.info(
                "agent %s dropped; keeping calls for %.0fs", session.agent_id, self.settings.agent_grace_s
            )
            session.dropped_until = now + self.settings.agent_grace_s
            await self.lifecycle.apply(self.matchmaker.set_available(session.agent_id, False, now))
            self.directory.send_peer_status(session, "reconnecting")
            return
        await self._remove_agent(session, now)

    async def _remove_agent(self, session: AgentSession, now: float) -> None:
        logger.info("agent %s gone", session.agent_id)
        del self.directory.agents[session.agent_id]
        for call_id in session.wrap_up:
            self.directory.calls.pop(call_id, None)
        await self.lifecycle.apply(self.matchmaker.remove_agent(session.agent_id, now))

    def deadlines(self) -> list[float | None]:
        """When each grace period and wrap-up ends (None: a session with no such deadline)."""
        directory = self.directory
        times = [c.dropped_until for c in directory.customers.values()]
        times += [until for a in directory.agents.values() for until in a.wrap_up.values()]
        times += [a.dropped_until for a in directory.agents.values()]
        return times

    async def expire(self, now: float) -> None:
        """End the grace periods and wrap-ups that are due."""
        for session in list(self.directory.customers.values()):
            if session.dropped_until is not None and session.dropped_until <= now:
                logger.info("customer %s did not come back", session.customer_id)
                session.dropped_until = None
                await self.lifecycle.customer_leaves(session, now, "dropped")
        for agent in list(self.directory.agents.values()):
            if agent.dropped_until is not None and agent.dropped_until <= now:
                await self._remove_agent(agent, now)
                continue
            for call_id, until in list(agent.wrap_up.items()):
                if until <= now:
                    await self.lifecycle.finish_wrap_up(agent, call_id, "")
