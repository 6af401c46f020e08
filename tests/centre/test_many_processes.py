"""One centre on three real ``telepresence serve --redis`` processes and one real Redis.

Customers and agents spread over the processes pair as on one process; every waiting
customer sees a distinct place; /api/status agrees on every process; a process killed with
``kill -9`` (leader or not), all of them restarted, or Redis restarted loses nobody's place.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from tests.centre.conftest import Centre, eventually
from tests.conftest import Client


def same_report(status: dict) -> dict:
    """What every process must agree on: /api/status without the asking process's name."""
    return {k: v for k, v in status.items() if k != "node"}


async def place(customer: Client, timeout: float = 10.0) -> int:
    """The customer's position as last told (waiting for the first status if none yet)."""
    latest = await customer.latest("queue_status", settle=0.3)
    if latest is None:
        latest = await customer.expect("queue_status", timeout=timeout)
    return latest["position"]


async def test_customers_and_agents_on_different_processes_pair_by_skill_language_and_affinity(
    centre: Centre,
) -> None:
    one, two, three = await centre.start(3)
    ann = await centre.login(one, "ann", skills=("billing",), languages=("en",))
    cat = await centre.login(two, "cat", skills=("billing",), languages=("en",))
    bea = await centre.login(three, "bea", skills=("tech",), languages=("fr",))

    pierre = await centre.join(one, "pierre", skill="tech", language="fr")
    offer = await bea.expect("offer")  # the only agent with tech in French, two processes away
    assert offer["customer"]["name"] == "pierre"
    await bea.send("accept", offer_id=offer["offer_id"])
    started = await pierre.expect("call_started")
    assert started["agent"]["name"] == "bea"

    # Ann has been idle longest: she gets the first billing customer, wherever each socket is.
    zoe = await centre.join(three, "zoe", skill="billing", language="en")
    offer = await ann.expect("offer")
    await ann.send("accept", offer_id=offer["offer_id"])
    await zoe.expect("call_started", agent={"name": "ann"})
    key = zoe.received[0]["customer_key"]  # the welcome
    await zoe.send("end_call")
    await zoe.expect("call_ended")
    await ann.expect("call_ended")

    # Zoe comes back through another process: she goes to Ann again, though Cat has been idle longer.
    zoe_again = await centre.join(two, "zoe", skill="billing", language="en", customer_key=key)
    offer = await ann.expect("offer")
    assert offer["customer"]["name"] == "zoe" and offer["history"]["last_agent"] == "ann"
    assert await cat.latest("offer") is None
    await ann.send("accept", offer_id=offer["offer_id"])
    await zoe_again.expect("call_started", agent={"name": "ann"})

    # Chat crosses processes both ways.
    await zoe_again.send("chat", text="it's me again")
    assert (await ann.expect("chat"))["text"] == "it's me again"
    await ann.send("chat", text="welcome back")
    assert (await zoe_again.expect("chat", **{"from": "agent"}))["text"] == "welcome back"


async def test_waiting_customers_on_three_processes_see_distinct_places_and_every_process_agrees(
    centre: Centre,
) -> None:
    processes = await centre.start(3)
    customers = []
    for index in range(6):
        process = processes[index % 3]
        customers.append(await centre.join(process, f"c{index}", skill="billing", language="en"))
    places = [await place(c) for c in customers]
    assert places == [1, 2, 3, 4, 5, 6]

    def agreed() -> bool:
        reports = [same_report(p.status()) for p in processes]
        waiting = reports[0]["queues"][0]["waiting"] if reports[0].get("queues") else 0
        return waiting == 6 and all(r == reports[0] for r in reports)

    await eventually(agreed)
    statuses = [p.status() for p in processes]
    assert {s["node"] for s in statuses} == {p.node for p in processes}
    assert len({s["leader"] for s in statuses}) == 1

    def centre_metrics() -> bool:  # the leader's figures, whichever process is asked
        lines = [
            sorted(line for line in p.metrics().splitlines() if line.startswith("telepresence_queue_waiting"))
            for p in processes
        ]
        return lines[0] == ['telepresence_queue_waiting{queue="billing/en"} 6.0'] and all(
            x == lines[0] for x in lines
        )

    await eventually(centre_metrics)

    # The first leaves: everyone behind moves up, on every process.
    await customers[0].send("leave")
    await customers[0].expect("left")
    assert [await place(c) for c in customers[1:]] == [1, 2, 3, 4, 5]


async def test_kill_9_of_the_leader_elects_another_within_5_s_and_keeps_every_place(centre: Centre) -> None:
    await centre.start(3)
    leader = centre.leader()
    follower, third = centre.others(leader)
    first = await centre.join(
        leader, "first", skill="billing", language="en"
    )  # its socket dies with the leader
    second = await centre.join(follower, "second", skill="billing", language="en")
    last = await centre.join(third, "last", skill="billing", language="en")
    assert [await place(c) for c in (first, second, last)] == [1, 2, 3]
    ticket = first.received[0]["ticket"]

    leader.kill()
    killed_at = time.monotonic()
    new_leader = await eventually(
        lambda: (s := follower.status())["leader"] not in (None, leader.node) and s["leader"]
    )
    assert time.monotonic() - killed_at < 5.0
    assert new_leader in (follower.node, third.node)
    # It replayed the steps committed since the last snapshot (the joins above among them).
    successor = follower if new_leader == follower.node else third
    replayed = re.findall(r"\((\d+) replayed\)", successor.log())
    assert replayed and int(replayed[-1]) >= 3, successor.log()

    # The customer whose socket was on the dead process comes back through another, at the same place.
    back = await centre.connect(third, "first again")
    await back.send("rejoin", ticket=ticket)
    await back.expect("welcome", rejoined=True)
    assert await place(back) == 1
    assert [await place(c) for c in (second, last)] == [2, 3]

    # And the centre still works: an agent on the survivors takes them in order.
    agent = await centre.login(follower, "ann", skills=("billing",), languages=("en",))
    offer = await agent.expect("offer")
    assert offer["customer"]["name"] == "first"


async def test_kill_9_of_a_door_ends_its_calls_requeues_their_customers_and_keeps_other_places(
    centre: Centre,
) -> None:
    await centre.start(3)
    leader = centre.leader()
    door, other = centre.others(leader)
    ann = await centre.login(door, "ann")  # the agent's socket dies with the door
    talking = await centre.join(other, "talking")
    offer = await ann.expect("offer")
    await ann.send("accept", offer_id=offer["offer_id"])
    await talking.expect("call_started")
    waiting = await centre.join(door, "waiting")  # this customer's socket dies too
    assert await place(waiting) == 1
    ticket = waiting.received[0]["ticket"]

    door.kill()
    # The agent does not come back: the call ends and its customer goes back to the head.
    ended = await talking.expect("call_ended", timeout=15)
    assert ended["requeued"] is True
    assert await place(talking) == 1

    back = await centre.connect(leader, "waiting again")
    await back.send("rejoin", ticket=ticket)
    await back.expect("welcome", rejoined=True)
    assert await place(back) == 2


async def test_all_processes_restarted_with_redis_kept_every_waiting_customer_keeps_their_place(
    centre: Centre,
) -> None:
    processes = await centre.start(2)
    customers = [await centre.join(processes[i % 2], f"c{i}", skill="tech", language="en") for i in range(4)]
    assert [await place(c) for c in customers] == [1, 2, 3, 4]
    tickets = [c.received[0]["ticket"] for c in customers]

    await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
    fresh = await centre.start(2)
    back = []
    for index, ticket in enumerate(tickets):
        client = await centre.connect(fresh[index % 2], f"c{index} back")
        await client.send("rejoin", ticket=ticket)
        await client.expect("welcome", rejoined=True)
        back.append(client)
    assert [await place(c) for c in back] == [1, 2, 3, 4]


async def test_redis_restarted_mid_run_the_processes_say_so_then_carry_on(centre: Centre) -> None:
    one, two = await centre.start(2)
    first = await centre.join(one, "first")
    second = await centre.join(two, "second")
    assert [await place(first), await place(second)] == [1, 2]

    centre.redis.stop()
    health = await asyncio.to_thread(httpx.get, f"{one.url}/healthz", timeout=5)
    assert health.status_code == 503 and "Redis" in health.json()["reason"]
    await first.send("chat", text="anyone there?")
    error = await first.expect("error")
    assert error["code"] == "unavailable"

    centre.redis.start()
    await eventually(
        lambda: all(httpx.get(f"{p.url}/healthz", timeout=2).status_code == 200 for p in (one, two))
    )
    third = None
    for _ in range(50):  # the first messages after the restart may meet a leader still being elected
        third = await centre.join(two, "third")
        if (await third.latest("queue_status", settle=0.5)) is not None:
            break
    assert third is not None
    assert await place(third) == 3
    assert [await place(first), await place(second)] == [1, 2]
    await first.send("chat", text="still here")
    assert (await first.expect("chat"))["text"] == "still here"
