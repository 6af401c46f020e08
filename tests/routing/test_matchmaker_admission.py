"""The Matchmaker under a CPU budget: the admission limit is data passed in, pure and synchronous."""

from __future__ import annotations

import pytest

from telepresence.routing import CustomerState, Matchmaker, OfferMade, QueueKey, RoutingError

GENERAL = QueueKey()
TECH = QueueKey("tech")


def make() -> Matchmaker:
    return Matchmaker(offer_timeout_s=20, affinity_window_s=300, decline_cooloff_s=60, max_misses=3)


def offers(events) -> list[tuple[str, str]]:
    return [(e.customer_id, e.agent_id) for e in events if isinstance(e, OfferMade)]


def in_call(mm: Matchmaker, customer_id: str, agent_id: str, now: float) -> None:
    events = mm.enqueue(customer_id, GENERAL, now)
    assert offers(events) == [(customer_id, agent_id)]
    mm.accept(events[0].offer_id, agent_id, now)


def test_no_limit_changes_nothing():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    assert mm.set_admission(None, 0) == []
    assert offers(mm.enqueue("ann", GENERAL, 1)) == [("ann", "sam")]
    assert mm.admission_waiting(1) == 0


def test_at_capacity_a_free_agent_gets_no_offer_and_the_customer_is_told_why():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 0, available=True)
    in_call(mm, "ann", "sam", 1)
    mm.set_admission(0, 2)
    assert mm.enqueue("bob", GENERAL, 3) == []
    status = mm.status("bob", 3)
    assert status.state is CustomerState.WAITING and status.position == 1
    assert status.at_capacity
    assert mm.agent_states()["lea"] == "available"  # the agent is free: the machine is not
    assert mm.admission_waiting(3) == 1


def test_expected_wait_counts_the_machine_turnover():
    """Two free agents, one call running, no room: the first waiter waits for that call to end."""
    mm = make()
    for agent in ("a", "b", "c"):
        mm.add_agent(agent, 0, available=True)
    in_call(mm, "ann", "a", 0)
    mm.set_admission(0, 1)
    mm.enqueue("bob", GENERAL, 2)
    mm.enqueue("cat", GENERAL, 3)
    bob, cat = mm.status("bob", 3), mm.status("cat", 3)
    mean = mm.handle_times.mean(GENERAL)
    assert bob.expected_wait_s == pytest.approx(mean)  # one call on the machine turns over
    assert cat.expected_wait_s == pytest.approx(2 * mean)
    # Without the budget they would be offered at once (two free agents).
    mm.set_admission(None, 4)
    assert mm.customer_state("bob") is CustomerState.OFFERED
    assert mm.customer_state("cat") is CustomerState.OFFERED


def test_offers_resume_in_place_order_across_queues_as_the_limit_rises():
    mm = make()
    mm.add_agent("busy", 0, available=True)
    in_call(mm, "zed", "busy", 0)
    mm.add_agent("gen", 0, available=True)
    mm.add_agent("tec", 0, available=True, skills=("tech",))
    mm.set_admission(0, 1)
    mm.enqueue("ann", TECH, 2)  # earliest place
    mm.enqueue("bob", GENERAL, 3)
    mm.enqueue("cat", GENERAL, 4)
    assert mm.status("cat", 4).position == 2  # in their own queue
    events = mm.set_admission(1, 5)
    assert offers(events) == [("ann", "tec")]
    assert mm.status("bob", 5).at_capacity and mm.status("cat", 5).at_capacity
    events = mm.set_admission(1, 6)  # one call started since: the shell grants one more
    assert offers(events) == [("bob", "gen")]
    assert not mm.status("cat", 6).at_capacity  # every agent is busy now: agents are the limit


def test_each_offer_uses_the_limit_and_a_declined_offer_gives_it_back():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 1, available=True)
    mm.set_admission(1, 2)
    first = mm.enqueue("ann", GENERAL, 3)
    assert offers(first) == [("ann", "sam")]  # longest idle
    assert offers(mm.enqueue("bob", GENERAL, 4)) == []  # the one admit is used
    assert mm.status("bob", 4).at_capacity
    # Sam passes: Ann's admit comes back, and she (the earlier place) goes to Lea.
    events = mm.decline(first[0].offer_id, "sam", 5)
    assert offers(events) == [("ann", "lea")]
    assert mm.customer_state("bob") is CustomerState.WAITING


def test_a_customer_who_leaves_while_offered_gives_the_admit_back():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.set_admission(1, 1)
    mm.enqueue("ann", GENERAL, 2)
    mm.enqueue("bob", GENERAL, 3)
    events = mm.leave("ann", 4)
    assert offers(events) == [("bob", "sam")]


def test_returning_customer_at_capacity_is_held_for_their_free_agent():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 0, available=True)
    mm.set_admission(0, 1)
    mm.enqueue("bob", GENERAL, 2)
    assert mm.enqueue("ann", GENERAL, 3, last_agent="lea") == []
    assert mm.customer_state("ann") is CustomerState.WAITING_FOR_AGENT
    assert mm.status("ann", 3).at_capacity
    events = mm.set_admission(2, 4)
    assert sorted(offers(events)) == [("ann", "lea"), ("bob", "sam")]


def test_a_freed_agent_waits_for_the_budget_too():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    in_call(mm, "ann", "sam", 0)
    mm.set_admission(0, 1)
    mm.enqueue("bob", GENERAL, 2)
    assert offers(mm.end_call("ann", 3)) == []  # the seat is free, the CPU not yet (as measured)
    assert offers(mm.set_admission(1, 4)) == [("bob", "sam")]


def test_the_limit_moving_marks_the_queues_changed_and_staying_put_does_not():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 0, available=True)
    in_call(mm, "ann", "sam", 0)
    mm.set_admission(0, 1)
    mm.enqueue("bob", GENERAL, 1)  # Lea is free: only the CPU holds Bob back
    assert mm.statuses(1)["bob"].at_capacity
    mm.take_changed_queues()
    assert mm.set_admission(0, 2) == []
    assert mm.take_changed_queues() == set()  # nothing to push to anyone
    events = mm.set_admission(1, 3)
    assert offers(events) == [("bob", "lea")]
    assert GENERAL in mm.take_changed_queues()


def test_customers_waiting_for_a_busy_agent_are_not_at_capacity_and_hear_nothing_new():
    """With every agent busy the agents are the limit: a CPU limit moving does not flip their flag."""
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 0, available=True)
    in_call(mm, "ann", "sam", 0)
    in_call(mm, "bob", "lea", 0)
    mm.set_admission(3, 1)
    mm.enqueue("cat", GENERAL, 2)
    mm.enqueue("dan", GENERAL, 3)
    before = mm.statuses(4)
    assert not any(s.at_capacity for s in before.values() if s.state is CustomerState.WAITING)
    for limit in (0, 2, 1, 3):
        mm.set_admission(limit, 5)
        assert {c: mm.statuses(5)[c] for c in ("cat", "dan")} == {c: before[c] for c in ("cat", "dan")}
    assert mm.admission_waiting(5) == 0


def test_a_customer_nobody_serves_waits_for_agents_not_capacity():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    in_call(mm, "ann", "sam", 0)
    mm.set_admission(0, 1)
    mm.enqueue("bob", TECH, 2)
    status = mm.status("bob", 2)
    assert status.expected_wait_s is None and not status.at_capacity


def test_a_negative_limit_is_refused():
    with pytest.raises(RoutingError):
        make().set_admission(-1, 0)
