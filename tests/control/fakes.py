"""The control plane in memory: a fake connection, a manual clock and a centre built on them.

A real :class:`~telepresence.switchboard.Switchboard` (real store, token authority, metrics
and message validation) with no uvicorn, no sockets and no sleeps: time moves only when a
test calls :meth:`Centre.advance`. The wire itself (framing, 1009, rate limits) keeps its
loopback tests (tests/control/test_bad_input.py).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from telepresence.auth import Claims, TokenAuthority
from telepresence.config import Settings
from telepresence.metrics import Metrics
from telepresence.sessions import Message
from telepresence.signalling import handle_frame
from telepresence.store import MemoryStore
from telepresence.switchboard import Switchboard

TEST_SECRET = "test-secret-0123456789abcdef"

# Media stays out of this tier (no worker processes, no greeter), and so does admission
# control, which would read this machine's CPU.
IN_MEMORY_SETTINGS: dict[str, Any] = {"media_workers": 0, "cpu_budget_pct": 100.0, "greeter_look": ""}


class ManualClock:
    """A monotonic and a wall clock that move only when told to, together."""

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self.now = monotonic
        self._wall_offset = wall - monotonic

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self.now += seconds


class FakeConnection:
    """A :class:`~telepresence.sessions.Connection` that records what the server sends and closes.

    Messages go through JSON on the way in, as they would on a socket, so a message that
    could not be sent for real fails here too. Like a real socket, nothing sent after a
    close arrives.
    """

    def __init__(self, id: str, label: str) -> None:
        self.id = id
        self.label = label
        self.received: list[Message] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

    def send(self, message: Message) -> None:
        if self.closed:
            return
        self.received.append(json.loads(json.dumps(message)))

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.close_code, self.close_reason = code, reason

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def of_type(self, type: str, **match: Any) -> list[Message]:
        """Every message of ``type`` received so far whose fields equal ``match``, oldest first."""
        return [
            m for m in self.received if m["type"] == type and all(m.get(k) == v for k, v in match.items())
        ]

    def last(self, type: str, **match: Any) -> Message:
        """The newest message of ``type`` matching ``match``; an AssertionError saying what came instead."""
        found = self.of_type(type, **match)
        if not found:
            seen = [str(m)[:160] for m in self.received[-12:]]
            raise AssertionError(f"{self.label}: no {type} {match or ''} in the last messages {seen}")
        return found[-1]

    def types(self) -> list[str]:
        return [m["type"] for m in self.received]

    def mark(self) -> int:
        """Where the record stands now, for :meth:`since`."""
        return len(self.received)

    def since(self, mark: int, type: str | None = None) -> list[Message]:
        """Messages received after ``mark`` (of ``type``, if given)."""
        return [m for m in self.received[mark:] if type is None or m["type"] == type]

    def __repr__(self) -> str:
        return f"FakeConnection({self.label!r}, {len(self.received)} received, closed={self.close_code})"


class Centre:
    """A real switchboard on a manual clock, driven the way the socket endpoint drives it.

    ``send`` validates like ``/ws`` (telepresence/signalling.py) and turns a
    :class:`ProtocolError` into the error message the client would see; after each message
    and each close the timer step runs, as the switchboard's woken timer task would.
    """

    def __init__(self, **overrides: Any) -> None:
        self.clock = ManualClock()
        self.settings = Settings.load(env={}, secret=TEST_SECRET, **{**IN_MEMORY_SETTINGS, **overrides})
        self.authority = TokenAuthority(TEST_SECRET.encode())
        self.store = MemoryStore(clock=self.clock.monotonic)
        self.metrics = Metrics()
        self.switchboard = Switchboard(
            self.settings,
            self.store,
            self.authority,
            self.metrics,
            clock=self.clock.monotonic,
            wall_clock=self.clock.wall,
        )
        self._ids = itertools.count(1)

    async def stop(self) -> None:
        """Stop the switchboard (it was never started: this closes what calls left behind)."""
        await self.switchboard.stop()

    # -------------------------------------------------------------- sockets

    def connect(self, label: str = "client") -> FakeConnection:
        """A socket that has sent nothing yet."""
        return FakeConnection(f"fake-{next(self._ids)}", label)

    async def send(self, conn: FakeConnection, message: dict[str, Any]) -> None:
        await self.send_raw(conn, json.dumps(message))

    async def send_raw(self, conn: FakeConnection, raw: str | bytes) -> None:
        """One frame from the client, validated and handled as ``/ws`` handles it (size and
        rate limits apart: those belong to the socket)."""
        await handle_frame(self.switchboard, conn, raw, self.switchboard.metrics)
        await self.switchboard.run_due()

    async def close(self, conn: FakeConnection) -> None:
        """The client's socket goes away (a closed tab, a lost network)."""
        await self.switchboard.disconnected(conn)
        conn.close(1000, "bye")  # what the endpoint does once the switchboard knows
        await self.switchboard.run_due()

    # ------------------------------------------------------------ customers

    async def join(self, name: str, *, skill: str = "", language: str = "", **fields: Any) -> FakeConnection:
        """A customer who joins and is welcomed (an AssertionError if they are not)."""
        conn = self.connect(name)
        await self.send(conn, {"type": "join", "name": name, "skill": skill, "language": language, **fields})
        conn.last("welcome")
        return conn

    async def rejoin(self, ticket: str, label: str = "rejoined") -> FakeConnection:
        """A new socket that comes back with ``ticket`` (check its ``welcome`` or ``error``)."""
        conn = self.connect(label)
        await self.send(conn, {"type": "rejoin", "ticket": ticket})
        return conn

    # --------------------------------------------------------------- agents

    def token(
        self,
        name: str,
        *,
        skills: tuple[str, ...] = (),
        languages: tuple[str, ...] = (),
        role: str = "agent",
        ttl: float = 3600,
    ) -> str:
        """A staff token, its expiry on this centre's wall clock."""
        claims = Claims(
            name=name,
            role=role,  # type: ignore[arg-type]
            skills=skills,
            languages=languages,
            expires_at=self.clock.wall() + ttl,
        )
        return self.authority.mint(claims)

    async def login(
        self,
        name: str,
        *,
        skills: tuple[str, ...] = (),
        languages: tuple[str, ...] = (),
        role: str = "agent",
        available: bool = True,
    ) -> FakeConnection:
        """A staff member logged in (and, for an agent, available unless told otherwise)."""
        conn = self.connect(name)
        token = self.token(name, skills=skills, languages=languages, role=role)
        await self.send(conn, {"type": "login", "token": token})
        conn.last("logged_in")
        if available and role == "agent":
            await self.send(conn, {"type": "set_status", "status": "available"})
            conn.last("agent_status")
        return conn

    async def accept(self, agent: FakeConnection) -> Message:
        """The agent accepts their newest offer; the offer it was."""
        offer = agent.last("offer")
        await self.send(agent, {"type": "accept", "offer_id": offer["offer_id"]})
        return offer

    # ----------------------------------------------------------------- time

    async def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, running every timer step due on the way at its own
        time, as the timer task would (an offer that times out at 30 s hands the customer to
        the next agent at 30 s, whose own offer then runs from there)."""
        target = self.clock.now + seconds
        for _ in range(10_000):
            due = self.switchboard.next_deadline()
            if due is None or due > target:
                break
            self.clock.advance(max(0.0, due - self.clock.now))
            await self.switchboard.run_due()
        else:
            raise AssertionError(f"the timer steps never caught up with {seconds} s")
        self.clock.advance(target - self.clock.now)
        await self.switchboard.run_due()
