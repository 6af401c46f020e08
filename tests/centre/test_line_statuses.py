"""A queue's moved line reaches each door as its sockets and their places, and the door makes
the very messages the leader would have sent one by one (in memory: two leaders' switchboards
on manual clocks, driven alike; no Redis)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

from telepresence.centre.ids import DerivedIds
from telepresence.centre.remote import Effects, RemoteConnection, SocketAddress, deliveries, line_texts
from telepresence.reports import waiting_status, waiting_status_text
from telepresence.routing.estimate import expected_wait
from telepresence.signalling import handle_frame
from telepresence.switchboard import Switchboard
from tests.control.fakes import TEST_SECRET, Centre

DOORS = ("door-a", "door-b", "door-c")
QUEUES = (("billing", ""), ("tech", ""))


class LeaderLike:
    """A switchboard whose sockets are remote, as a leader's are; ``lines``: the line path on."""

    def __init__(self, *, lines: bool) -> None:
        self.centre = centre = Centre()
        # Ids derived from the secret and one salt, as a leader's: both sides name everyone alike.
        ids = DerivedIds(TEST_SECRET.encode())
        ids.salt = "0123456789abcdef"
        centre.switchboard = Switchboard(
            centre.settings,
            centre.store,
            centre.authority,
            centre.metrics,
            clock=centre.clock.monotonic,
            wall_clock=centre.clock.wall,
            ids=ids,
        )
        self.switchboard = centre.switchboard
        self.effects = Effects()
        if lines:
            self.switchboard.reports.line_sink = self.effects.add_line
        self.conns: dict[str, RemoteConnection] = {}
        self.delivered: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.entry_kinds: set[str] = set()

    def conn(self, name: str) -> RemoteConnection:
        if name not in self.conns:
            door = DOORS[len(self.conns) % len(DOORS)]
            self.conns[name] = RemoteConnection(SocketAddress(door, "life", name), self.effects)
        return self.conns[name]

    async def send(self, name: str, message: dict[str, Any]) -> None:
        switchboard = self.switchboard
        await handle_frame(switchboard, self.conn(name), json.dumps(message), switchboard.metrics)
        await switchboard.run_due()
        self.collect()

    async def close(self, name: str) -> None:
        await self.switchboard.disconnected(self.conns.pop(name))
        await self.switchboard.run_due()
        self.collect()

    async def advance(self, seconds: float) -> None:
        await self.centre.advance(seconds)
        self.collect()

    def collect(self) -> None:
        """What each door would hand each socket, from the entries as committed (JSON and back)."""
        for node, entries in self.effects.take().items():
            for entry in json.loads(json.dumps(entries)):
                self.entry_kinds.update(entry.keys() & {"line", "statuses", "send", "close"})
                if "line" in entry:  # as the door sends them: made as text (Door._dispatch)
                    sends = [(local_id, json.loads(text)) for local_id, text in line_texts(entry)]
                    assert sends == list(deliveries(entry))
                else:
                    sends = list(deliveries(entry))
                for local_id, message in sends:
                    self.delivered[f"{node}/{local_id}"].append(message)

    def offers(self, agent: str) -> list[str]:
        sent = self.delivered[f"{self.conns[agent].address.node}/{agent}"]
        return [m["offer_id"] for m in sent if m["type"] == "offer"]


async def test_doors_make_the_same_statuses_from_lines_as_the_leader_sends_one_by_one():
    rows, lines = LeaderLike(lines=False), LeaderLike(lines=True)
    both = (rows, lines)
    rng = random.Random(7)
    agents = [f"agent-{i}" for i in range(3)]
    for index, agent in enumerate(agents):
        skill = QUEUES[index % 2][0]
        token = rows.centre.token(agent, skills=(skill,))  # one secret and clock: valid in both
        for side in both:
            await side.send(agent, {"type": "login", "token": token})
    customers: list[str] = []
    for step in range(260):
        roll = rng.random()
        if roll < 0.45 or len(customers) < 5:
            name = f"customer-{step}"
            skill, language = rng.choice(QUEUES)
            message = {"type": "join", "name": name, "skill": skill, "language": language}
            customers.append(name)
            for side in both:
                await side.send(name, message)
        elif roll < 0.6:
            name = customers.pop(rng.randrange(len(customers)))
            for side in both:
                await side.send(name, {"type": "leave"})
        elif roll < 0.67:
            name = customers.pop(rng.randrange(len(customers)))
            for side in both:
                await side.close(name)
        elif roll < 0.8:  # an agent comes and goes: every wait of their queue moves
            agent = rng.choice(agents)
            status = rng.choice(("available", "away"))
            for side in both:
                await side.send(agent, {"type": "set_status", "status": status})
        elif roll < 0.9:
            agent = rng.choice(agents)
            pending = lines.offers(agent)
            if pending:
                assert rows.offers(agent) == pending
                for side in both:
                    await side.send(agent, {"type": "accept", "offer_id": pending[-1]})
                    await side.send(agent, {"type": "end_call"})
        else:
            seconds = rng.choice((1.0, 5.0, 30.0))
            for side in both:
                await side.advance(seconds)
    assert "line" in lines.entry_kinds and "line" not in rows.entry_kinds
    assert lines.delivered == rows.delivered  # every socket: the same messages, in the same order
    statuses = [m for sent in lines.delivered.values() for m in sent if m["type"] == "queue_status"]
    assert len(statuses) > 300
    assert any(m["expected_wait_s"] for m in statuses)  # agents were seated: waits, not only None
    assert any(m["state"] != "waiting" for m in statuses)  # offered and held ones travel as rows
    await rows.centre.stop()
    await lines.centre.stop()


def test_a_line_entry_gives_each_socket_its_place_and_wait():
    effects = Effects()
    a = RemoteConnection(SocketAddress("door1", "life1", "a"), effects)
    b = RemoteConnection(SocketAddress("door2", "life1", "b"), effects)
    c = RemoteConnection(SocketAddress("door1", "life1", "c"), effects)
    effects.add_line((1, 3, 240.0), [a, b, c], [0, 4, 7])
    by_node = effects.take()
    assert [(e["ids"], e["at"]) for e in by_node["door1"]] == [(["a", "c"], [0, 7])]
    door1 = list(deliveries(json.loads(json.dumps(by_node["door1"]))[0]))
    assert door1 == [("a", waiting_status(0, 1, 3, 240.0)), ("c", waiting_status(7, 1, 3, 240.0))]
    assert door1[1][1] == {
        "type": "queue_status",
        "state": "waiting",
        "position": 8,
        "expected_wait_s": round(expected_wait(7, 1, 3, 240.0)),  # type: ignore[arg-type]
        "capacity": False,
    }
    assert list(deliveries(by_node["door2"][0])) == [("b", waiting_status(4, 1, 3, 240.0))]
    assert waiting_status(3, 0, 0, 240.0)["expected_wait_s"] is None  # nobody to serve them


def test_a_waiting_status_made_as_text_is_the_leaders_message_encoded():
    """The door sends a moved line's statuses as text made without the dict: byte for byte what
    json.dumps makes of the leader's own message (waits of None, 0 and .5 roundings included)."""
    for free, seats, mean in ((1, 3, 240.0), (0, 0, 180.0), (2, 5, 33.3), (0, 4, 0.0), (3, 3, 1.5)):
        for ahead in (*range(40), 999, 10_000):
            text = waiting_status_text(ahead, free, seats, mean)
            assert text == json.dumps(waiting_status(ahead, free, seats, mean)), (ahead, free, seats, mean)
    entry = {"line": [1, 3, 240.0], "ids": ["a", "b"], "at": [0, 7]}
    assert [(i, json.loads(t)) for i, t in line_texts(entry)] == list(deliveries(entry))
