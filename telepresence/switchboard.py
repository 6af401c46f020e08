"""The switchboard: the async shell around the Matchmaker.

Sockets in, matchmaker commands, events out. The switchboard owns one lock (every
change to the centre happens under it), the one timer task that expires offers,
affinity windows, grace periods and wrap-up, and the parts it hands each message to:

- :class:`~telepresence.reception.Reception`: join, rejoin, login;
- :class:`~telepresence.session_messages.SessionMessages`: what customers and agents ask;
- :class:`~telepresence.grace_periods.GracePeriods`: sockets that close and come back;
- :class:`~telepresence.call_lifecycle.CallLifecycle`: the matchmaker's events carried out;
- :class:`~telepresence.reports.Reports`: queue positions pushed, /metrics, /api/status;
- :class:`~telepresence.directory.Directory`: the sessions and calls they all read;
- :class:`~telepresence.media_control.MediaControl` and
  :class:`~telepresence.host_control.HostControl`: calls' media and the avatar host, whose
  messages are handled outside the lock (answering an offer gathers ICE);
- :class:`~telepresence.admission.Admission`: how many calls the CPU lets start, what to shed.

Connections are reached only through the :class:`Connection` protocol, whose
``send`` never blocks: one slow socket can never stall another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from media.room import Role
from telepresence import protocol as p
from telepresence.admission import Admission
from telepresence.auth import Ids, TokenAuthority
from telepresence.call_lifecycle import CallLifecycle
from telepresence.calls import Call
from telepresence.config import Settings, labels
from telepresence.directory import Directory
from telepresence.grace_periods import GracePeriods
from telepresence.host_control import HostControl, is_host_message
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics
from telepresence.protocol import ProtocolError
from telepresence.reception import Reception
from telepresence.reports import Reports
from telepresence.routing import CustomerState, HandleTimes, Matchmaker
from telepresence.session_messages import SessionMessages
from telepresence.sessions import AgentSession, Connection, CustomerSession, Message
from telepresence.shedding import ShedStep, sender_limits
from telepresence.store import Store

logger = logging.getLogger(__name__)

MEDIA_MESSAGES = (p.WebRtcOffer, p.WebRtcAnswer, p.SetLayout, p.ScreenShare, p.MediaStats)


class Switchboard:
    """Pairs customers with agents over the signalling sockets."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        authority: TokenAuthority,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        media: MediaControl | None = None,
        ids: Ids | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.authority = authority
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self.ids = ids or Ids()
        self.matchmaker = Matchmaker(
            offer_timeout_s=settings.offer_timeout_s,
            affinity_window_s=settings.affinity_window_s,
            decline_cooloff_s=settings.decline_cooloff_s,
            max_misses=settings.max_missed_offers,
            service_target_s=settings.service_target_s,
            handle_times=HandleTimes(prior_s=settings.default_handle_time_s),
            wrap_up=settings.wrap_up_s > 0,
            skills=labels(settings.skills),
            languages=labels(settings.languages),
        )
        self.directory = Directory(self.matchmaker)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._closing = False
        # The rooms, here; or a stand-in that sends media messages to another process
        # (telepresence.centre.media_router).
        self.media = media or MediaControl(
            settings,
            metrics,
            send=self.directory.send_call,
            end_call=self.end_call_for_media,
            requeue_call=self.requeue_for_media,
        )
        self.host_control = HostControl(
            self.media,
            send_operator=self.directory.send_operator,
            active_calls=self.directory.active_calls,
        )
        self.admission = Admission(
            budget_pct=settings.cpu_budget_pct,
            shed_pct=settings.cpu_shed_pct,
            call_pct=settings.call_cpu_pct,
            metrics=metrics,
            on_sample=self._wake.set,  # the timer step hands the new figure to the matchmaker
            on_shed=self._shed,
        )
        self.lifecycle = CallLifecycle(
            settings=settings,
            store=store,
            metrics=metrics,
            matchmaker=self.matchmaker,
            directory=self.directory,
            media=self.media,
            admission=self.admission,
            clock=clock,
            wall_clock=wall_clock,
            ids=self.ids,
        )
        self.reports = Reports(
            metrics=metrics,
            matchmaker=self.matchmaker,
            directory=self.directory,
            media=self.media,
            admission=self.admission,
            clock=clock,
        )
        self.reception = Reception(
            settings=settings,
            authority=authority,
            store=store,
            matchmaker=self.matchmaker,
            directory=self.directory,
            lifecycle=self.lifecycle,
            reports=self.reports,
            media=self.media,
            host_control=self.host_control,
            clock=clock,
            wall_clock=wall_clock,
            ids=self.ids,
        )
        self.session_messages = SessionMessages(
            store=store,
            matchmaker=self.matchmaker,
            directory=self.directory,
            lifecycle=self.lifecycle,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.grace_periods = GracePeriods(
            settings=settings, matchmaker=self.matchmaker, directory=self.directory, lifecycle=self.lifecycle
        )

    # The directory's tables, where tests read them (the parts use self.directory).
    @property
    def customers(self) -> dict[str, CustomerSession]:
        return self.directory.customers

    @property
    def agents(self) -> dict[str, AgentSession]:
        return self.directory.agents

    @property
    def calls(self) -> dict[str, Call]:
        return self.directory.calls

    @property
    def _by_conn(self) -> dict[str, CustomerSession | AgentSession]:
        return self.directory.by_conn

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.media.start()
        self._timer = asyncio.create_task(self._run_timers(), name="switchboard-timers")
        await self.admission.start()

    async def stop(self) -> None:
        """Refuse new work, tell every socket, stop the timer task. Safe to call twice."""
        self._closing = True
        for session in list(self.directory.by_conn.values()):
            session.conn.close(1001, "server shutting down")  # type: ignore[union-attr]
        await self.host_control.close()
        for call in self.directory.calls.values():
            self.media.close(call)
        for customer in self.directory.customers.values():
            lobby, customer.lobby = customer.lobby, None
            if lobby is not None:  # a waiting customer's greeter
                lobby.end("shutdown")
                self.media.close(lobby)
        await self.media.stop()
        await self.admission.stop()
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None

    # ------------------------------------------------------------------ input

    async def handle(self, conn: Connection, message: p.ClientMessage) -> None:
        """Apply one validated client message. Raises ProtocolError for the client to see."""
        session = self.directory.by_conn.get(conn.id)
        is_operator = isinstance(session, AgentSession) and session.claims.role == "operator"
        if is_operator and (is_host_message(message) or isinstance(message, p.WebRtcOffer)):
            # Outside the lock too: the studio's offer gathers ICE.
            reply = await self.host_control.handle(session.agent_id, message)  # type: ignore[union-attr]
            if reply is not None:
                conn.send(reply)
            self._wake.set()
            return
        if isinstance(message, MEDIA_MESSAGES):
            # Outside the lock: answering an offer gathers ICE and takes a while.
            call, role = self._media_call_of(conn)
            try:
                await self.media.handle(call, role, message)
            finally:
                self._wake.set()  # a new room has receipts to push
            if isinstance(session, CustomerSession) and call is session.lobby and session.last_status:
                # A greeter that just appeared says where the customer stands straight away.
                status = session.last_status
                self.media.announce(call, status["position"], status["expected_wait_s"])
            return
        async with self._lock:
            if self._closing:
                raise ProtocolError("shutting_down", "the server is shutting down")
            session = self.directory.by_conn.get(conn.id)
            if isinstance(message, p.Ping):
                conn.send({"type": "pong"})
                return
            if session is None:
                await self.reception.from_anonymous(conn, message)
            elif isinstance(session, CustomerSession):
                await self.session_messages.from_customer(session, message)
            else:
                await self.session_messages.from_agent(session, message)
            self.reports.publish()
            self._wake.set()

    async def disconnected(self, conn: Connection) -> None:
        """A socket closed. Agents drop at once; customers keep their place for a grace period."""
        async with self._lock:
            await self.grace_periods.socket_closed(conn, self.clock())
            self.reports.publish()
            self._wake.set()

    def _media_call_of(self, conn: Connection) -> tuple[Call, Role]:
        """The live call a socket's media message is about, and the sender's side of it."""
        session = self.directory.by_conn.get(conn.id)
        if session is None:
            raise ProtocolError("not_joined", "join the queue or log in first")
        if isinstance(session, CustomerSession):
            call = self.directory.calls.get(session.call_id or "")
            role: Role = "customer"
            if call is None and self.media.greets:
                if session.lobby is None:
                    session.lobby = Call(
                        self.ids.new_id("lobby"), session.customer_id, "", started_at=self.clock()
                    )
                call = session.lobby
        elif session.claims.role == "agent":
            calls = self.directory.calls_of(session)
            call = self.directory.calls[calls[-1]] if calls else None
            role = "agent"
        else:
            raise ProtocolError("forbidden", "operators have no calls")
        if call is None or not call.active:
            raise ProtocolError("out_of_order", "media can be negotiated only in a call")
        return call, role

    async def end_call_for_media(self, call: Call, reason: str) -> None:
        async with self._lock:
            if call.active and self.matchmaker.customer_state(call.customer_id) is CustomerState.IN_CALL:
                await self.lifecycle.apply(
                    self.matchmaker.end_call(call.customer_id, self.clock(), reason=reason)
                )
                self.reports.publish()
                self._wake.set()

    async def requeue_for_media(self, call: Call) -> None:
        """The call's media process died: the call ends as an agent drop ends it (reason
        ``agent_left``), the customer back at their place in the queue."""
        async with self._lock:
            if call.active and self.matchmaker.customer_state(call.customer_id) is CustomerState.IN_CALL:
                await self.lifecycle.apply(self.matchmaker.requeue_call(call.customer_id, self.clock()))
                self.reports.publish()
                self._wake.set()

    # ----------------------------------------------------------------- timers

    async def _run_timers(self) -> None:
        """The one task that expires offers, affinity windows, grace periods and wrap-up."""
        while True:
            deadline = self.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            # Cleared before the step, not before the wait: a wake set while the step runs
            # (a CPU sample, a call ending) gets a step of its own.
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:
                # A bug in one expiry must not stop every later one.
                logger.exception("timer step failed")

    async def run_due(self) -> None:
        """Apply everything due at the clock's now: offers, grace periods, wrap-up, receipts."""
        async with self._lock:
            now = self.clock()
            await self.lifecycle.apply(self.matchmaker.tick(now))
            await self.grace_periods.expire(now)
            await self._admit()
            self.media.push_receipts(self.directory.active_calls(), self.clock())
            self.reports.publish()

    def next_deadline(self) -> float | None:
        times = [self.matchmaker.next_deadline(), *self.grace_periods.deadlines()]
        if any(c.active and c.room is not None for c in self.directory.calls.values()):
            times.append(self.media.next_receipt_at)
        return min((t for t in times if t is not None), default=None)

    # -------------------------------------------------------------- admission

    async def _admit(self) -> None:
        """Tell the matchmaker how many calls the CPU budget lets start now (telepresence/admission.py)."""
        now = self.clock()
        starts = [c.started_at for c in self.directory.active_calls()]
        offers = sum(len(a.offers) for a in self.directory.agents.values())
        await self.lifecycle.apply(
            self.matchmaker.set_admission(self.admission.seats(now, starts, offers), now)
        )

    def _shed(self, step: ShedStep) -> None:
        """Running calls shed (or get back) quality: each agent's browser caps its screen sender,
        and each room holds its screen tile to the step whatever the browser sends."""
        self.media.shed(step)
        for call in self.directory.active_calls():
            self.directory.send_call(call, "agent", sender_limits(step, call.id))

    # ----------------------------------------------------------------- output

    def refresh_gauges(self) -> None:
        """Media, queue, agent and admission gauges for /metrics."""
        self.media.refresh_gauges()
        self.reports.refresh_gauges()

    def status_report(self) -> Message:
        """Aggregates for /api/status: no customer's name or chat."""
        return self.reports.status_report()
