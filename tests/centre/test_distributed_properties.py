"""The matchmaker's invariants, held by a centre of three real processes whatever happens.

The pure Matchmaker has its own state machine (tests/routing/test_matchmaker_properties.py).
Here hypothesis draws a list of steps against the distributed shell instead, and one async
driver plays them on a fresh centre of three ``telepresence serve --redis`` processes and
one Redis: customers join through a random process, agents log in through a random
process, offers are accepted or declined, customers leave, a customer's tab drops and
rejoins by ticket through another process, agents hang up or come back from away, and the
leader is killed with ``kill -9``, sometimes just after a join and an accept were sent
through survivors (the dying leader may or may not have applied them: either way once).
Everyone whose socket was on the dead process reconnects through a survivor, as the pages
do, and a process is started again (on the same address or a new one): always three.

Throughout, from what every socket received (each message stamped as it arrived):

- a customer is never in two calls at once, nor with two agents: no ``call_started`` while
  a call is open on that socket, no ``queue_status`` during a call, each call id names one
  customer and one agent wherever it is seen, and a customer's (or an agent's) next call
  starts only once something showed the previous one over;
- no agent holds more than its capacity (one customer, offered or in a call).

Once the centre has settled (every process's /api/status the same, twice, and no socket
hearing anything new):

- nobody is lost: every customer who joined and neither left nor finished a call is in a
  call (which exactly one agent holds) or offered (to exactly one agent) or waiting, and the
  waiting ones of each queue hold the places 1..n, in the order they joined;
- /api/status counts what the clients see: waiting per queue, active calls, agents by state.

The default run is three derandomized examples of about ten steps and one leader kill each
(50-75 s); ``--run-slow`` adds twelve random ones of 15-30 steps and one to three kills
(about five minutes). Examples are not shrunk: a run depends on timing, and each costs
seconds; a failure prints the steps as played and the tail of every process's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings

from tests.centre.conftest import SETTINGS, Centre
from tests.centre.processes import ServeProcess
from tests.conftest import Client, free_port
from tests.redis_server import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

# Hypothesis's pytest plugin imports libcst to report a failing example; libcst's import warns
# (DeprecationWarning from mypy_extensions), which -W error turns into an INTERNALERROR that hides
# the failure itself. Imported here once, quietly, so a failure is reported as one.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

SKILLS = ("", "", "billing", "tech")  # "" (the general queue) twice as likely
LANGUAGES = ("", "en", "fr")
AGENT_SKILLS = ((), (), ("billing",), ("tech",), ("billing", "tech"))
AGENT_LANGUAGES = ((), (), ("en",), ("fr",), ("en", "fr"))
MAX_AGENTS = 4
# Generous: an answer may wait for a new leader (lease 3 s) after a kill, and the suite's machine
# is shared (a load of 10 on two cores was seen: a process then takes over 20 s to start).
STEP_TIMEOUT_S = 30.0
START_TIMEOUT_S = 90.0
DOOR_NOTICED_S = 8.0  # a dead door's sockets and rooms are handled by then (TTL 3 s + 2 s + checks)
SLACK_S = 1.0  # sockets on different processes hear one commit at slightly different times
SETTLE_TIMEOUT_S = 60.0


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Join:
    door: int
    skill: str
    language: str


@dataclass(frozen=True)
class Login:
    door: int
    skills: tuple[str, ...]
    languages: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    agent: int
    accept: bool


@dataclass(frozen=True)
class Leave:
    customer: int


@dataclass(frozen=True)
class DropAndRejoin:
    customer: int
    door: int


@dataclass(frozen=True)
class HangUp:
    agent: int


@dataclass(frozen=True)
class BackFromAway:
    agent: int


@dataclass(frozen=True)
class KillLeader:
    door: int
    same_port: bool  # start the killed address again (a new incarnation), or a new process
    in_flight: bool  # a join and an accept sent through survivors just before: applied once, not lost


Step = Join | Login | Answer | Leave | DropAndRejoin | HangUp | BackFromAway | KillLeader

PICK = st.integers(0, 11)  # indices are taken modulo what there is to pick from when the step runs
JOIN = st.builds(Join, PICK, st.sampled_from(SKILLS), st.sampled_from(LANGUAGES))
LOGIN = st.builds(Login, PICK, st.sampled_from(AGENT_SKILLS), st.sampled_from(AGENT_LANGUAGES))
ANSWER = st.builds(Answer, PICK, st.sampled_from((True, True, False)))
KILL = st.builds(KillLeader, PICK, st.booleans(), st.booleans())
# Kinds of step in a round: step i of a scenario is KINDS[(i + drawn) % len(KINDS)], so even
# the simplest example hypothesis draws (all zeros) goes through every kind and every door.
KINDS: tuple[st.SearchStrategy[Step], ...] = (
    JOIN,
    LOGIN,
    JOIN,
    ANSWER,
    st.builds(DropAndRejoin, PICK, PICK),
    ANSWER,
    JOIN,
    st.builds(HangUp, PICK),
    st.builds(Leave, PICK),
    ANSWER,
    st.builds(BackFromAway, PICK),
)


@st.composite
def scenarios(draw: st.DrawFn, steps: tuple[int, int], kills: tuple[int, int]) -> list[Step]:
    """An agent and two customers to start with, random steps, and leader kills among them."""
    body: list[Step] = [draw(LOGIN), draw(JOIN), draw(JOIN)]
    for index in range(draw(st.integers(*steps))):
        step = draw(KINDS[(index + draw(st.integers(0, len(KINDS) - 1))) % len(KINDS)])
        if isinstance(step, Join | Login | DropAndRejoin):
            step = dataclasses.replace(step, door=step.door + index)
        body.append(step)
    for _ in range(draw(st.integers(*kills))):
        # Counted from the middle, so that the simplest example kills mid-run, not first.
        offset = draw(st.integers(0, len(body) - 1))
        body.insert((len(body) // 2 + offset) % len(body) + 1, draw(KILL))
    return body


# ------------------------------------------------------------- the clients


class Socket:
    """One WebSocket of a customer or agent, read in the background; every message timestamped."""

    def __init__(self, client: Client, door: ServeProcess) -> None:
        self.client = client
        self.door = door
        self.log: list[tuple[float, dict[str, Any]]] = []
        self.opened_at = time.monotonic()
        self.reader = asyncio.create_task(self._read(), name=f"read-{client.label}")

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.client.ws:
                self.log.append((time.monotonic(), json.loads(raw)))

    @property
    def open(self) -> bool:
        return not self.reader.done()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for _, m in self.log]

    async def send(self, type: str, **fields: Any) -> int:
        """Send; returns where in the log the answer will be."""
        mark = len(self.log)
        await self.client.send(type, **fields)
        return mark

    async def wait(self, since: int, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first message from ``since`` on that is ``wanted`` (or an error), waiting for it."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            for _, message in self.log[since:]:
                if wanted(message) or message["type"] == "error":
                    return message
            if not self.open or time.monotonic() > deadline:
                why = "the socket closed" if not self.open else f"not within {STEP_TIMEOUT_S} s"
                raise AssertionError(
                    f"{self.client.label} on {self.door.node}: no {what} ({why}); "
                    f"last messages {[str(m)[:160] for m in self.messages[-8:]]}"
                )
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        await self.reader


def is_(type: str, **match: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == type and all(m.get(k) == v for k, v in match.items())


@dataclass
class Customer:
    name: str
    joined: int  # joining order
    sockets: list[Socket]
    ticket: str = ""

    @property
    def socket(self) -> Socket:
        return self.sockets[-1]

    def view(self) -> CustomerView:
        return CustomerView.of(self.socket.messages)

    @property
    def present(self) -> bool:
        return self.view().over is None


@dataclass
class CustomerView:
    """What the current socket says now: the open call, the last queue_status, or why it is over."""

    queue: str | None = None
    call: str | None = None
    status: dict[str, Any] | None = None
    over: str | None = None

    @classmethod
    def of(cls, messages: Iterable[dict[str, Any]]) -> CustomerView:
        view = cls()
        for m in messages:
            kind = m["type"]
            if kind == "welcome":
                view = cls(queue=m["queue"])
            elif kind == "call_started":
                view.call, view.status = m["call_id"], None
            elif kind == "call_ended":
                view.call = None
                if not m["requeued"]:
                    view.over = "the call ended"
            elif kind == "queue_status":
                view.status = m
            elif kind == "left":
                view.call, view.over = None, "left"
            elif kind == "error" and m["code"] == "unknown_ticket":
                view.over = "unknown ticket"
        return view


@dataclass
class Agent:
    name: str
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    sockets: list[Socket]

    @property
    def socket(self) -> Socket:
        return self.sockets[-1]

    def view(self) -> AgentView:
        return AgentView.of(self.socket.messages)


@dataclass
class AgentView:
    """What the current socket says now: calls (id -> customer), pending offers, status."""

    calls: dict[str, str] = field(default_factory=dict)
    offers: dict[str, str] = field(default_factory=dict)
    status: str | None = None

    @classmethod
    def of(cls, messages: Iterable[dict[str, Any]]) -> AgentView:
        view = cls()
        for m in messages:
            kind = m["type"]
            if kind == "logged_in":
                view = cls(
                    calls={c["call_id"]: c["customer"]["name"] for c in m["calls"]}, status=m["status"]
                )
            elif kind == "offer":
                view.offers[m["offer_id"]] = m["customer"]["name"]
            elif kind == "offer_withdrawn":
                view.offers.pop(m["offer_id"], None)
            elif kind == "call_started":
                view.offers.pop(m.get("offer_id", ""), None)
                view.calls[m["call_id"]] = m["customer"]["name"]
            elif kind == "call_ended":
                view.calls.pop(m["call_id"], None)
            elif kind == "agent_status":
                view.status = m["status"]
        return view


# --------------------------------------------------------------- the driver


class Driver:
    """Plays steps on one centre, keeping every socket each customer and agent ever had."""

    def __init__(self, centre: Centre) -> None:
        self.centre = centre
        self.customers: list[Customer] = []
        self.agents: list[Agent] = []
        self.last_kill = float("-inf")
        self.played: list[str] = []

    async def play(self, step: Step) -> None:
        match step:
            case Join():
                outcome = await self.join(step)
            case Login():
                outcome = await self.login(step)
            case Answer():
                outcome = await self.answer(step)
            case Leave():
                outcome = await self.leave(step)
            case DropAndRejoin():
                outcome = await self.drop_and_rejoin(step)
            case HangUp():
                outcome = await self.hang_up(step)
            case BackFromAway():
                outcome = await self.back_from_away(step)
            case KillLeader():
                outcome = await self.kill_leader(step)
        self.played.append(f"{step} -> {outcome}")

    def doors(self) -> list[ServeProcess]:
        return self.centre.alive()

    async def open(self, door: ServeProcess, label: str) -> Socket:
        return Socket(await self.centre.connect(door, label), door)

    def present(self) -> list[Customer]:
        return [c for c in self.customers if c.present and c.socket.open]

    # ----------------------------------------------------------- the steps

    async def join(self, step: Join) -> str:
        doors = self.doors()
        door = doors[step.door % len(doors)]
        return await self.joined(*await self.send_join(door, step.skill, step.language))

    async def send_join(self, door: ServeProcess, skill: str, language: str) -> tuple[Customer, int]:
        customer = Customer(f"c{len(self.customers)}", len(self.customers), [])
        self.customers.append(customer)  # its joining order is its place in the list
        customer.sockets.append(await self.open(door, customer.name))
        return customer, await customer.socket.send(
            "join", name=customer.name, skill=skill, language=language
        )

    async def joined(self, customer: Customer, mark: int) -> str:
        welcome = await customer.socket.wait(mark, is_("welcome"), "welcome")
        assert welcome["type"] == "welcome", f"{customer.name} could not join: {welcome}"
        customer.ticket = welcome["ticket"]
        return f"{customer.name} joined {welcome['queue']} on {customer.socket.door.node}"

    async def login(self, step: Login) -> str:
        if len(self.agents) >= MAX_AGENTS:
            return "skipped: enough agents"
        doors = self.doors()
        door = doors[step.door % len(doors)]
        agent = Agent(f"a{len(self.agents)}", step.skills, step.languages, [])
        await self.log_in(agent, door)
        self.agents.append(agent)
        return f"{agent.name} logged in on {door.node}"

    async def log_in(self, agent: Agent, door: ServeProcess) -> None:
        socket = await self.open(door, agent.name)
        agent.sockets.append(socket)
        token = self.centre.token(agent.name, skills=agent.skills, languages=agent.languages)
        mark = await socket.send("login", token=token)
        logged_in = await socket.wait(mark, is_("logged_in"), "logged_in")
        assert logged_in["type"] == "logged_in", f"{agent.name} could not log in: {logged_in}"
        if logged_in["status"] == "away":  # a new login; a takeover keeps the status it had
            mark = await socket.send("set_status", status="available")
            await socket.wait(mark, is_("agent_status"), "agent_status")

    async def answer(self, step: Answer) -> str:
        offered = [(a, sorted(v.offers)[0]) for a in self.agents if (v := a.view()).offers]
        if not offered:
            return "skipped: no offer"
        agent, offer_id = offered[step.agent % len(offered)]
        mark = await agent.socket.send("accept" if step.accept else "decline", offer_id=offer_id)
        return await self.answered(agent, offer_id, mark, "accepted" if step.accept else "declined")

    async def answered(self, agent: Agent, offer_id: str, mark: int, how: str) -> str:
        outcome = await agent.socket.wait(
            mark,
            lambda m: m.get("offer_id") == offer_id and m["type"] in ("call_started", "offer_withdrawn"),
            f"answer to {offer_id}",
        )
        return f"{agent.name} {how} {offer_id}: {outcome['type']}"

    async def leave(self, step: Leave) -> str:
        present = self.present()
        if not present:
            return "skipped: nobody"
        customer = present[step.customer % len(present)]
        mark = await customer.socket.send("leave")
        outcome = await customer.socket.wait(mark, is_("left"), "left")
        return f"{customer.name}: {outcome['type']}"

    async def drop_and_rejoin(self, step: DropAndRejoin) -> str:
        present = self.present()
        if not present:
            return "skipped: nobody"
        customer = present[step.customer % len(present)]
        old = customer.socket
        await old.close()
        others = self.centre.others(old.door)
        door = others[step.door % len(others)]
        return await self.rejoin(customer, door)

    async def rejoin(self, customer: Customer, door: ServeProcess) -> str:
        socket = await self.open(door, f"{customer.name}'")
        customer.sockets.append(socket)
        mark = await socket.send("rejoin", ticket=customer.ticket)
        outcome = await socket.wait(mark, is_("welcome", rejoined=True), "welcome")
        return f"{customer.name} rejoined on {door.node}: {outcome.get('code', outcome['type'])}"

    async def hang_up(self, step: HangUp) -> str:
        talking = [a for a in self.agents if a.view().calls]
        if not talking:
            return "skipped: no call"
        agent = talking[step.agent % len(talking)]
        mark = await agent.socket.send("end_call")
        outcome = await agent.socket.wait(mark, is_("call_ended"), "call_ended")
        return f"{agent.name} hung up: {outcome['type']}"

    async def back_from_away(self, step: BackFromAway) -> str:
        away = [a for a in self.agents if a.view().status == "away"]
        if not away:
            return "skipped: nobody away"
        agent = away[step.agent % len(away)]
        mark = await agent.socket.send("set_status", status="available")
        outcome = await agent.socket.wait(mark, is_("agent_status"), "agent_status")
        return f"{agent.name}: {outcome.get('status', outcome)}"

    async def kill_leader(self, step: KillLeader) -> str:
        leader = await leading(self.centre)
        in_flight = []
        if step.in_flight:  # sent, not yet answered: the dying leader may or may not have applied them
            survivors = self.centre.others(leader)
            joining = await self.send_join(survivors[step.door % len(survivors)], "", "")
            in_flight.append(self.joined(*joining))
            offered = [(a, sorted(v.offers)[0]) for a in self.agents if (v := a.view()).offers]
            offered = [(a, offer_id) for a, offer_id in offered if a.socket.door is not leader]
            if offered:
                agent, offer_id = offered[step.door % len(offered)]
                mark = await agent.socket.send("accept", offer_id=offer_id)
                in_flight.append(self.answered(agent, offer_id, mark, "accepted"))
        leader.kill()
        self.last_kill = time.monotonic()
        survivors = self.centre.others(leader)
        # Everyone whose socket was on it comes back through a survivor, as the pages do.
        customers = [c for c in self.customers if c.socket.door is leader and c.view().over is None]
        agents = [a for a in self.agents if a.socket.door is leader]
        door = step.door
        back: list[Coroutine[Any, Any, object]] = [
            self.rejoin(c, survivors[(door := door + 1) % len(survivors)]) for c in customers
        ]
        back += [self.log_in(a, survivors[(door := door + 1) % len(survivors)]) for a in agents]
        done = await asyncio.gather(*back, *in_flight)
        new = await leading(self.centre, not_=leader.node)
        if step.same_port:
            await start(self.centre, leader)
        else:
            await start(self.centre, ServeProcess(self.centre.redis.url, self.centre.state_dir, **SETTINGS))
        names = [c.name for c in customers] + [a.name for a in agents]
        return f"killed {leader.node}; {new.node} leads; back: {names}; in flight: {done[len(back) :]}"

    # ------------------------------------------------------------- settling

    async def settle(self) -> dict[str, Any]:
        """Once a dead door has surely been noticed: the same /api/status twice, and silence."""
        await asyncio.sleep(max(0.0, self.last_kill + DOOR_NOTICED_S - time.monotonic()))
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        previous: Any = None
        while True:
            await asyncio.sleep(1.0)
            heard = self.heard()
            reports = [same_report(s) for s in await asyncio.gather(*(statuses(p) for p in self.doors()))]
            agreed = all(r == reports[0] for r in reports)
            if agreed and reports[0] == previous and heard == self._heard_before:
                return reports[0]
            previous, self._heard_before = (reports[0] if agreed else None), heard
            assert time.monotonic() < deadline, f"the centre never settled: {reports}"

    _heard_before: int = -1

    def heard(self) -> int:
        return sum(len(s.log) for s in self.sockets())

    def sockets(self) -> list[Socket]:
        return [s for c in self.customers for s in c.sockets] + [s for a in self.agents for s in a.sockets]


async def statuses(process: ServeProcess) -> dict[str, Any]:
    return await asyncio.to_thread(process.status)


def same_report(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "node"}


async def leading(centre: Centre, not_: str | None = None) -> ServeProcess:
    """The live process that leads (once one does, and it is not ``not_``)."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        for process in centre.alive():
            with contextlib.suppress(Exception):
                name = (await statuses(process))["leader"]
                found = [p for p in centre.alive() if p.node == name and name != not_]
                if found:
                    return found[0]
                break
        assert time.monotonic() < deadline, "no leader elected"
        await asyncio.sleep(0.1)


# ----------------------------------------------------------------- checks


def check_history(customers: list[Customer], agents: list[Agent]) -> list[str]:
    """Everything every socket ever heard: never two calls at once, never over capacity."""
    problems: list[str] = []
    pairs: dict[str, set[tuple[str, str]]] = {}  # call id -> (customer, agent) as each side saw it
    started: dict[str, float] = {}  # call id -> first seen starting, anywhere
    ended: dict[str, float] = {}  # call id -> first evidence it is over, anywhere
    calls_of: dict[str, set[str]] = {}  # customer or agent -> their call ids

    def saw_start(call_id: str, at: float, customer: str, agent: str) -> None:
        pairs.setdefault(call_id, set()).add((customer, agent))
        started[call_id] = min(at, started.get(call_id, at))
        calls_of.setdefault(customer, set()).add(call_id)
        calls_of.setdefault(agent, set()).add(call_id)

    def saw_end(call_id: str, at: float) -> None:
        ended[call_id] = min(at, ended.get(call_id, at))

    # First every start, wherever seen: the evidence of ends below refers to them.
    for customer in customers:
        for socket in customer.sockets:
            for at, m in socket.log:
                if m["type"] == "call_started":
                    saw_start(m["call_id"], at, customer.name, m["agent"]["name"])
    for agent in agents:
        for socket in agent.sockets:
            for at, m in socket.log:
                if m["type"] == "call_started":
                    saw_start(m["call_id"], at, m["customer"]["name"], agent.name)

    for customer in customers:
        for socket in customer.sockets:
            where = f"{customer.name} on {socket.door.node}"
            call: str | None = None
            resumed_or_queued = False
            welcomed = 0
            for at, m in socket.log:
                kind = m["type"]
                if kind == "welcome" and (welcomed := welcomed + 1) > 1:
                    problems.append(f"{where}: a second welcome (one join or rejoin applied twice?)")
                if kind == "call_started":
                    if call is not None:
                        problems.append(f"{where}: call_started {m['call_id']} during {call}")
                    call = m["call_id"]
                    resumed_or_queued = True
                elif kind == "call_ended":
                    if call != m["call_id"]:
                        problems.append(f"{where}: call_ended {m['call_id']} but its call is {call}")
                    call = None
                    saw_end(m["call_id"], at)
                elif kind == "queue_status":
                    if call is not None:
                        problems.append(f"{where}: queue_status {m} during {call}")
                    if not resumed_or_queued:
                        # Just rejoined and not resumed: whatever call it was in is over.
                        for call_id in calls_of.get(customer.name, ()):
                            if started[call_id] < socket.opened_at:
                                saw_end(call_id, at)
                    resumed_or_queued = True

    for agent in agents:
        for socket in agent.sockets:
            where = f"{agent.name} on {socket.door.node}"
            holding: dict[str, str] = {}  # call or offer id -> customer
            for at, m in socket.log:
                kind = m["type"]
                if kind == "logged_in":
                    holding = {c["call_id"]: c["customer"]["name"] for c in m["calls"]}
                    for call_id in calls_of.get(agent.name, ()):
                        if call_id not in holding and started[call_id] < socket.opened_at:
                            saw_end(call_id, at)
                elif kind in ("offer", "call_started"):
                    key = m["call_id"] if kind == "call_started" else m["offer_id"]
                    if kind == "call_started":
                        holding.pop(m.get("offer_id", ""), None)
                    if holding:
                        problems.append(f"{where}: over capacity, {kind} {key} while holding {holding}")
                    holding[key] = m["customer"]["name"]
                elif kind == "offer_withdrawn":
                    holding.pop(m["offer_id"], None)
                elif kind == "call_ended":
                    holding.pop(m["call_id"], None)
                    saw_end(m["call_id"], at)

    for call_id, seen in sorted(pairs.items()):
        if len(seen) > 1:
            problems.append(f"{call_id} seen as {sorted(seen)}")
    # Across sockets and processes: each next call of a customer or agent starts only once
    # something (a call_ended, a queue_status after a rejoin, a login without it) showed the
    # previous one over.
    for who, call_ids in sorted(calls_of.items()):
        ordered = sorted(call_ids, key=started.__getitem__)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before not in ended:
                problems.append(f"{who}: {after} started while {before} was never seen ending")
            elif ended[before] > started[after] + SLACK_S:
                gap = ended[before] - started[after]
                problems.append(f"{who}: {after} started {gap:.1f} s before {before} was seen ending")
    return problems


def check_settled(customers: list[Customer], agents: list[Agent], report: dict[str, Any]) -> list[str]:
    """Nobody lost, places 1..n in joining order, and /api/status counting what clients see."""
    problems: list[str] = []
    views = {c.name: c.view() for c in customers}
    agent_views = {a.name: a.view() for a in agents}
    held_calls: dict[str, list[tuple[str, str]]] = {}  # customer -> (agent, call id)
    held_offers: dict[str, list[str]] = {}  # customer -> agents
    for name, seat in agent_views.items():
        if len(seat.calls) + len(seat.offers) > 1:
            problems.append(f"{name} over capacity: calls {seat.calls}, offers {seat.offers}")
        for call_id, whom in seat.calls.items():
            held_calls.setdefault(whom, []).append((name, call_id))
        for whom in seat.offers.values():
            held_offers.setdefault(whom, []).append(name)

    waiting: dict[str, list[tuple[int, str, int]]] = {}  # queue -> (joined, name, position)
    for customer in customers:
        view = views[customer.name]
        where = f"{customer.name} ({customer.socket.door.node})"
        if view.over is not None:
            if customer.name in held_calls or customer.name in held_offers:
                problems.append(f"{where}: over ({view.over}) but still held by an agent")
            if (
                view.over == "unknown ticket"
                and not any(
                    m["type"] == "call_ended" and not m["requeued"]
                    for s in customer.sockets
                    for m in s.messages
                )
                and not ended_for_good_by_agent(customer, agents)
            ):
                problems.append(f"{where}: lost: its rejoin got unknown_ticket, its conversation never ended")
            continue
        if not customer.socket.open:
            problems.append(f"{where}: its socket was closed by the server")
        if view.call is not None:
            held = held_calls.get(customer.name, [])
            if len(held) != 1 or held[0][1] != view.call:
                problems.append(f"{where}: in {view.call}, agents hold {held}")
            continue
        if view.status is None:
            problems.append(
                f"{where}: lost: neither in a call nor told a place; heard {customer.socket.messages}"
            )
            continue
        if customer.name in held_calls:
            problems.append(f"{where}: told {view.status} but agents hold {held_calls[customer.name]}")
        state = view.status["state"]
        if state == "offered":
            if len(held_offers.get(customer.name, [])) != 1:
                problems.append(f"{where}: offered, but offers held by {held_offers.get(customer.name)}")
        else:
            if customer.name in held_offers:
                problems.append(f"{where}: {state}, but offered by {held_offers[customer.name]}")
            waiting.setdefault(view.queue or "?", []).append(
                (customer.joined, customer.name, view.status["position"])
            )

    for queue, members in sorted(waiting.items()):
        members.sort()
        positions = [position for _, _, position in members]
        if positions != list(range(1, len(members) + 1)):
            problems.append(
                f"{queue}: places {[(n, p) for _, n, p in members]}, not 1..{len(members)} in order"
            )

    # /api/status counts what the clients see.
    counted = {q["queue"]: q["waiting"] for q in report.get("queues", [])}
    for queue in sorted(set(counted) | set(waiting)):
        if counted.get(queue, 0) != len(waiting.get(queue, [])):
            problems.append(
                f"/api/status: {queue} waiting {counted.get(queue)}, clients {len(waiting.get(queue, []))}"
            )
    live = {call_id for view in agent_views.values() for call_id in view.calls}
    if report["calls"]["active"] != len(live):
        problems.append(f"/api/status: {report['calls']['active']} active calls, agents hold {sorted(live)}")
    states = Counter(seat_state(view) for view in agent_views.values())
    if {k: v for k, v in report["agents"].items() if v} != dict(states):
        seats = {n: (v.status, v.calls, v.offers) for n, v in agent_views.items()}
        heard = {a.name: [str(m)[:140] for m in a.socket.messages[-6:]] for a in agents}
        problems.append(
            f"/api/status: agents {report['agents']}, clients {dict(states)}: {seats}; heard {heard}"
        )
    return problems


def seat_state(view: AgentView) -> str:
    """The agent's state as /api/status counts it. No agent_status follows a declined or
    withdrawn offer (docs/protocol.md lists when one is sent), so the last one told may
    still say busy: busy with a free seat is available again."""
    if view.calls or view.offers:
        return "busy"
    return "available" if view.status == "busy" else view.status or "?"


def ended_for_good_by_agent(customer: Customer, agents: list[Agent]) -> bool:
    """An agent heard this customer's call end for good (the customer's socket was away then)."""
    calls = {
        m["call_id"]
        for a in agents
        for s in a.sockets
        for m in s.messages
        if m["type"] == "call_started" and m["customer"]["name"] == customer.name
    }
    return any(
        m["type"] == "call_ended" and m["call_id"] in calls and not m["requeued"]
        for a in agents
        for s in a.sockets
        for m in s.messages
    )


# ------------------------------------------------------------------ running


async def start(centre: Centre, process: ServeProcess) -> None:
    """Start (or start again) one process of the centre, patiently."""
    if process not in centre.processes:
        centre.processes.append(process)
    await asyncio.to_thread(process.start, START_TIMEOUT_S)


@contextlib.asynccontextmanager
async def fresh_centre(base: Path) -> Any:
    directory = Path(tempfile.mkdtemp(dir=base))
    redis = RedisServer(free_port(), directory / "redis")
    redis.start()
    centre = Centre(redis, directory)
    try:
        processes = [ServeProcess(redis.url, directory, **SETTINGS) for _ in range(3)]
        await asyncio.gather(*(start(centre, p) for p in processes))
        yield centre
    finally:
        await centre.close()
        redis.kill()


async def run(scenario: list[Step], base: Path) -> None:
    async with fresh_centre(base) as centre:
        driver = Driver(centre)
        try:
            for step in scenario:
                await driver.play(step)
            report = await driver.settle()
            problems = check_history(driver.customers, driver.agents)
            problems += check_settled(driver.customers, driver.agents, report)
            assert not problems, "\n".join(problems)
        except AssertionError as exc:
            logs = "\n".join(f"--- {p.node}\n{p.log()[-2500:]}" for p in centre.processes)
            played = "\n".join(driver.played)
            raise AssertionError(f"{exc}\n\nplayed:\n{played}\n\nprocess logs:\n{logs}") from None
        finally:
            await asyncio.gather(*(s.close() for s in driver.sockets()))


COMMON = settings(
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: runs depend on timing and take seconds
    suppress_health_check=list(HealthCheck),
    database=None,
)


@settings(COMMON, max_examples=3, derandomize=True)
@given(scenario=scenarios(steps=(7, 9), kills=(1, 1)))
async def test_the_matchmakers_invariants_hold_on_three_processes_with_a_leader_killed(
    scenario: list[Step], tmp_path_factory: pytest.TempPathFactory
) -> None:
    await run(scenario, tmp_path_factory.mktemp("centre"))


@pytest.mark.slow
@settings(COMMON, max_examples=12)
@given(scenario=scenarios(steps=(15, 30), kills=(1, 3)))
async def test_the_matchmakers_invariants_hold_on_three_processes_long(
    scenario: list[Step], tmp_path_factory: pytest.TempPathFactory
) -> None:
    await run(scenario, tmp_path_factory.mktemp("centre"))
