"""The Matchmaker's policy, one rule at a time: pure and synchronous, time passed in."""

from __future__ import annotations

import pytest

from telepresence.routing import (
    AgentSetAway,
    CallEnded,
    ChoiceOffered,
    CustomerState,
    HandleTimes,
    Matchmaker,
    OfferMade,
    OfferWithdrawn,
    Paired,
    QueueKey,
    RoutingError,
    expected_wait,
)

GENERAL = QueueKey()
BILLING_EN = QueueKey("billing", "en")
BILLING = QueueKey("billing")
TECH = QueueKey("tech")


def make(**overrides) -> Matchmaker:
    params = dict(
        offer_timeout_s=20, affinity_window_s=300, decline_cooloff_s=60, max_misses=3, service_target_s=20
    )
    params.update(overrides)
    return Matchmaker(**params)


def offers(events) -> list[tuple[str, str]]:
    """(customer, agent) of every OfferMade in ``events``."""
    return [(e.customer_id, e.agent_id) for e in events if isinstance(e, OfferMade)]


def only_offer(events) -> OfferMade:
    made = [e for e in events if isinstance(e, OfferMade)]
    assert len(made) == 1, events
    return made[0]


def serve(mm: Matchmaker, customer_id: str, key: QueueKey, now: float, **kw) -> OfferMade:
    """Enqueue a customer who is offered at once, and accept: they are in a call."""
    offer = only_offer(mm.enqueue(customer_id, key, now, **kw))
    mm.accept(offer.offer_id, offer.agent_id, now)
    return offer


def position(mm: Matchmaker, customer_id: str, now: float = 0) -> int | None:
    return mm.status(customer_id, now).position


# ------------------------------------------------------------------ eligibility


def test_agent_with_no_skills_serves_only_the_general_queue():
    mm = make()
    mm.add_agent("gen", 0, available=True)
    assert mm.enqueue("ann", BILLING, 1) == []
    assert mm.enqueue("cat", TECH, 2) == []
    assert offers(mm.enqueue("bob", GENERAL, 3)) == [("bob", "gen")]


def test_agent_with_skills_also_serves_the_general_queue():
    mm = make()
    mm.add_agent("sam", 0, skills=["billing"], available=True)
    assert offers(mm.enqueue("bob", GENERAL, 1)) == [("bob", "sam")]


def test_agent_with_no_languages_serves_any_language():
    mm = make()
    mm.add_agent("sam", 0, skills=["billing"], available=True)
    assert offers(mm.enqueue("ann", QueueKey("billing", "fr"), 1)) == [("ann", "sam")]


def test_agent_with_languages_serves_only_those():
    mm = make()
    mm.add_agent("lea", 0, languages=["fr"], available=True)
    assert mm.enqueue("ann", QueueKey("", "de"), 1) == []
    assert mm.status("ann", 1).expected_wait_s is None  # nobody can serve her: unknown wait
    assert offers(mm.enqueue("bob", QueueKey("", "fr"), 2)) == [("bob", "lea")]


def test_customer_with_no_language_is_served_by_anyone_eligible_by_skill():
    mm = make()
    mm.add_agent("lea", 0, skills=["billing"], languages=["fr"], available=True)
    assert offers(mm.enqueue("ann", BILLING, 1)) == [("ann", "lea")]


def test_away_agent_gets_no_offer_until_available():
    mm = make()
    mm.add_agent("sam", 0)
    assert mm.agent_states() == {"sam": "away"}
    assert mm.enqueue("ann", GENERAL, 1) == []
    assert offers(mm.set_available("sam", True, 2)) == [("ann", "sam")]
    assert mm.agent_states() == {"sam": "busy"}


# ------------------------------------------------------------ who gets whom


def test_longest_idle_eligible_agent_gets_the_customer():
    mm = make()
    mm.add_agent("first", 0, available=True)
    mm.add_agent("billing", 1, skills=["billing"], available=True)
    mm.add_agent("second", 2, available=True)
    assert serve(mm, "ann", BILLING, 3).agent_id == "billing"  # the only eligible one
    assert serve(mm, "bob", GENERAL, 4).agent_id == "first"
    assert serve(mm, "cat", GENERAL, 5).agent_id == "second"
    # Ending a call makes an agent idle from that moment: "first" is now the newest idle.
    mm.end_call("cat", 6)
    mm.end_call("bob", 7)
    assert only_offer(mm.enqueue("dan", GENERAL, 8)).agent_id == "second"


def test_coming_back_from_away_counts_as_newly_idle():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 1, available=True)
    mm.set_available("sam", False, 2)
    mm.set_available("sam", True, 3)
    assert only_offer(mm.enqueue("ann", GENERAL, 4)).agent_id == "lea"


def test_free_agent_takes_the_earliest_place_across_the_queues_it_serves():
    mm = make()
    mm.add_agent("sam", 0, skills=["billing"], languages=["en"], available=True)
    serve(mm, "first", GENERAL, 0)
    mm.enqueue("b1", BILLING_EN, 1)
    mm.enqueue("g1", GENERAL, 2)
    mm.enqueue("t1", TECH, 3)  # sam has no tech skill
    mm.enqueue("b2", BILLING_EN, 4)
    served = []
    customer = "first"
    for now in (10, 20, 30):
        offer = only_offer(mm.end_call(customer, now))
        mm.accept(offer.offer_id, "sam", now)
        customer = offer.customer_id
        served.append(customer)
    assert served == ["b1", "g1", "b2"]
    assert mm.customer_state("t1") is CustomerState.WAITING


def test_capacity_gives_an_agent_several_customers_at_once():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    assert offers(mm.enqueue("ann", GENERAL, 1)) == [("ann", "sam")]
    assert offers(mm.enqueue("bob", GENERAL, 2)) == [("bob", "sam")]
    assert mm.enqueue("cat", GENERAL, 3) == []
    assert mm.agent_customers("sam") == {"ann", "bob"}
    assert mm.agent_states() == {"sam": "busy"}


# --------------------------------------------------------------------- affinity


def test_returning_customer_is_offered_at_once_to_their_free_last_agent():
    mm = make()
    mm.add_agent("lea", 0, available=True)  # idle longer
    mm.add_agent("sam", 1, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 2, last_agent="sam"))
    assert (offer.agent_id, offer.returning) == ("sam", True)
    assert only_offer(mm.enqueue("bob", GENERAL, 3)).returning is False


def test_returning_customer_whose_agent_is_busy_chooses_with_both_waits():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 1)
    mm.add_agent("lea", 2, available=True)
    events = mm.enqueue("ann", GENERAL, 3, last_agent="sam")
    # Sam: one seat, nobody else waiting for him, 180 s prior: ~180 s. Anyone: Lea is free now.
    assert events == [ChoiceOffered("ann", "sam", agent_wait_s=180.0, any_wait_s=0.0)]
    assert mm.customer_state("ann") is CustomerState.CHOOSING
    # While choosing, she keeps her place and nobody else is offered her.
    assert mm.agent_states()["lea"] == "available"
    assert position(mm, "ann") == 1
    with pytest.raises(RoutingError):
        mm.choose("first", True, 4)


def test_choosing_the_next_available_agent():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 1)
    mm.add_agent("lea", 2, available=True)
    mm.enqueue("ann", GENERAL, 3, last_agent="sam")
    assert offers(mm.choose("ann", False, 4)) == [("ann", "lea")]
    with pytest.raises(RoutingError):
        mm.choose("ann", True, 5)


def test_waiting_for_the_last_agent_goes_ahead_of_earlier_customers_when_they_free_up():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 1)
    mm.enqueue("bob", GENERAL, 2)  # joined before Ann
    mm.enqueue("ann", GENERAL, 3, last_agent="sam")
    assert mm.choose("ann", True, 4) == []
    assert mm.customer_state("ann") is CustomerState.WAITING_FOR_AGENT
    offer = only_offer(mm.end_call("first", 50))
    assert (offer.customer_id, offer.agent_id, offer.returning) == ("ann", "sam", True)


def test_affinity_window_over_the_customer_falls_back_to_anyone_keeping_their_place():
    mm = make(affinity_window_s=100)
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.add_agent("lea", 0)  # away for now
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    mm.choose("ann", True, 11)
    mm.enqueue("bob", GENERAL, 20)
    assert mm.next_deadline() == 110
    assert mm.tick(109) == []
    assert mm.customer_state("ann") is CustomerState.WAITING_FOR_AGENT
    assert mm.tick(110) == []  # released, but nobody is free
    assert mm.customer_state("ann") is CustomerState.WAITING
    assert (position(mm, "ann", 110), position(mm, "bob", 110)) == (1, 2)
    # Any agent now; Sam is no longer preferred, so Lea (idle longer) gets her.
    mm.set_available("lea", True, 111)
    assert mm.agent_customers("lea") == {"ann"}


def test_still_choosing_when_the_window_ends_falls_back_too():
    mm = make(affinity_window_s=100)
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.add_agent("lea", 0, available=True)
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    assert offers(mm.tick(110)) == [("ann", "lea")]


def test_choosing_customer_is_offered_when_their_agent_frees_up():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    assert offers(mm.end_call("first", 20)) == [("ann", "sam")]


def test_last_agent_away_or_unknown_means_an_ordinary_queue_place():
    mm = make()
    mm.add_agent("sam", 0)  # away
    mm.add_agent("lea", 0, available=True)
    assert offers(mm.enqueue("ann", GENERAL, 1, last_agent="sam")) == [("ann", "lea")]
    assert mm.enqueue("bob", GENERAL, 2, last_agent="gone") == []
    assert mm.customer_state("bob") is CustomerState.WAITING


# ----------------------------------------------------------- offers and misses


def test_offer_times_out_to_the_next_agent_and_the_customer_keeps_their_place():
    mm = make()
    mm.add_agent("silent", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 1))
    assert offer.expires_at == 21 and mm.next_deadline() == 21
    mm.add_agent("lea", 5)
    mm.enqueue("bob", GENERAL, 6)
    mm.set_available("lea", True, 7)  # takes Bob
    mm.add_agent("max", 8, available=True)
    assert mm.tick(20.9) == []
    events = mm.tick(21)
    assert events[0] == OfferWithdrawn(offer.offer_id, "ann", "silent", "timeout")
    assert offers(events) == [("ann", "max")]


def test_offers_expiring_together_keep_the_queue_order():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    assert offers(mm.enqueue("ann", GENERAL, 0)) == [("ann", "sam")]
    mm.enqueue("bob", GENERAL, 0)
    mm.enqueue("cat", GENERAL, 0)
    assert offers(mm.add_agent("lea", 0, available=True)) == [("bob", "lea")]
    # Both offers time out at 20. Regression: Sam's offer went first and Sam took Cat
    # while Bob, ahead of her, was still out with Lea's expiring offer.
    assert offers(mm.tick(20)) == [("ann", "lea"), ("bob", "sam")]
    assert position(mm, "cat", 20) == 1


def test_declined_customer_goes_to_the_next_agent_and_the_decliner_takes_someone_else():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    mm.add_agent("lea", 1)
    first = only_offer(mm.enqueue("ann", GENERAL, 2))
    mm.enqueue("bob", GENERAL, 3)
    mm.set_available("lea", True, 4)  # takes Bob
    events = mm.decline(first.offer_id, "sam", 5)
    assert events[0] == OfferWithdrawn(first.offer_id, "ann", "sam", "declined")
    assert offers(events) == []  # Lea is busy with Bob's offer: Ann waits at the head
    assert position(mm, "ann", 5) == 1
    assert offers(mm.enqueue("cat", GENERAL, 6)) == [("cat", "sam")]


def test_decliner_takes_the_next_customer_at_once():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    first = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.enqueue("bob", GENERAL, 2)
    # Regression: Sam sat idle while Bob waited, until Ann's cool-off with Sam ran out.
    assert offers(mm.decline(first.offer_id, "sam", 3)) == [("bob", "sam")]
    assert position(mm, "ann", 3) == 1


def test_decliner_takes_a_customer_waiting_for_them():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    serve(mm, "first", GENERAL, 0)
    second = only_offer(mm.enqueue("bob", GENERAL, 1))
    mm.enqueue("ann", GENERAL, 2, last_agent="sam")
    mm.choose("ann", True, 3)
    assert offers(mm.decline(second.offer_id, "sam", 4)) == [("ann", "sam")]


def test_decline_cooloff_keeps_the_customer_from_the_same_agent_for_a_while():
    mm = make(decline_cooloff_s=60)
    mm.add_agent("sam", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 1))
    assert mm.decline(offer.offer_id, "sam", 2) == [OfferWithdrawn(offer.offer_id, "ann", "sam", "declined")]
    assert mm.agent_states() == {"sam": "available"}
    assert mm.next_deadline() == 62
    assert mm.tick(61) == []
    again = only_offer(mm.tick(62))
    assert (again.customer_id, again.agent_id) == ("ann", "sam")


def test_agent_who_misses_max_misses_offers_in_a_row_is_set_away():
    mm = make(max_misses=2, decline_cooloff_s=1000)
    mm.add_agent("sam", 0, available=True)
    one = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.decline(one.offer_id, "sam", 2)
    two = only_offer(mm.enqueue("bob", GENERAL, 3))
    events = mm.tick(two.expires_at)
    assert events == [
        OfferWithdrawn(two.offer_id, "bob", "sam", "timeout"),
        AgentSetAway("sam", "missed_offers"),
    ]
    assert mm.agent_states() == {"sam": "away"}


def test_accepting_resets_the_miss_count():
    mm = make(max_misses=2)
    mm.add_agent("sam", 0, available=True)
    one = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.decline(one.offer_id, "sam", 2)
    serve(mm, "bob", GENERAL, 3)
    mm.end_call("bob", 4)
    three = only_offer(mm.enqueue("cat", GENERAL, 5))
    assert not any(isinstance(e, AgentSetAway) for e in mm.decline(three.offer_id, "sam", 6))


def test_agent_set_away_with_several_offers_requeues_them_in_place_order():
    mm = make(max_misses=1, decline_cooloff_s=1000)
    mm.add_agent("sam", 0, capacity=3, available=True)
    ids = ["zed", "amy", "kim"]  # places in this order; ids in another
    made = [only_offer(mm.enqueue(c, GENERAL, i + 1)) for i, c in enumerate(ids)]
    mm.add_agent("lea", 10, available=True)
    events = mm.decline(made[0].offer_id, "sam", 11)
    assert AgentSetAway("sam", "missed_offers") in events
    # Zed (declined) and the others are all back; Lea takes the earliest of them: Zed.
    # Regression: Zed went back only after the others, so Amy took Lea ahead of him.
    assert offers(events) == [("zed", "lea")]
    assert (position(mm, "amy", 11), position(mm, "kim", 11)) == (1, 2)


def test_customers_requeued_together_all_reach_free_agents():
    mm = make(max_misses=1)
    mm.add_agent("sam", 0, capacity=2, available=True)
    first = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.enqueue("bob", GENERAL, 2)  # Sam's second seat
    mm.add_agent("lea", 3, available=True)
    mm.add_agent("max", 4, available=True)
    events = mm.decline(first.offer_id, "sam", 5)  # Sam goes away: Bob's offer comes back too
    # Regression: Lea, Bob's best agent, took Ann (earlier) and Bob was not tried with Max.
    assert offers(events) == [("ann", "lea"), ("bob", "max")]


def test_going_away_withdraws_pending_offers_but_keeps_calls():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    serve(mm, "ann", GENERAL, 1)
    offer = only_offer(mm.enqueue("bob", GENERAL, 2))
    events = mm.set_available("sam", False, 3)
    assert events == [OfferWithdrawn(offer.offer_id, "bob", "sam", "agent_away")]
    assert mm.customer_state("ann") is CustomerState.IN_CALL
    assert mm.customer_state("bob") is CustomerState.WAITING
    assert mm.set_available("sam", False, 4) == []


# -------------------------------------------------------------- agent drops


def test_dropped_agents_customers_go_back_to_their_original_place():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "ann", GENERAL, 1)
    mm.enqueue("bob", GENERAL, 2)
    events = mm.remove_agent("sam", 3)
    assert events == [CallEnded("ann", "sam", reason="agent_left", requeued=True)]
    assert mm.customer_state("ann") is CustomerState.WAITING
    assert (position(mm, "ann", 3), position(mm, "bob", 3)) == (1, 2)
    mm.add_agent("lea", 4)
    assert offers(mm.set_available("lea", True, 5)) == [("ann", "lea")]
    assert not mm.has_agent("sam")


def test_dropped_agents_customers_are_offered_on_in_place_order():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    serve(mm, "zed", GENERAL, 1)  # earlier place, later id
    second = only_offer(mm.enqueue("amy", GENERAL, 2))
    mm.add_agent("lea", 3, available=True)  # free: nobody is waiting
    events = mm.remove_agent("sam", 4)
    assert OfferWithdrawn(second.offer_id, "amy", "sam", "agent_left") in events
    assert CallEnded("zed", "sam", reason="agent_left", requeued=True) in events
    # Regression: customers went back in id order, so Amy took Lea ahead of Zed.
    assert offers(events) == [("zed", "lea")]
    assert position(mm, "amy", 4) == 1


def test_customers_waiting_for_a_dropped_agent_fall_back_to_anyone():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.add_agent("lea", 1)
    mm.enqueue("ann", GENERAL, 2, last_agent="sam")
    mm.choose("ann", True, 3)
    mm.enqueue("bob", GENERAL, 4)
    mm.remove_agent("sam", 5)
    # "first" goes back too, at the head; Ann keeps her place ahead of Bob.
    assert [position(mm, c, 5) for c in ("first", "ann", "bob")] == [1, 2, 3]
    assert mm.customer_state("ann") is CustomerState.WAITING


def test_a_call_whose_media_died_requeues_its_customer_at_their_place_and_frees_the_seat():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "ann", GENERAL, 1)
    mm.set_available("sam", False, 2)  # away: the call carries on
    mm.enqueue("bob", GENERAL, 3)
    events = mm.requeue_call("ann", 4)
    assert events == [CallEnded("ann", "sam", reason="agent_left", requeued=True)]
    assert (position(mm, "ann", 4), position(mm, "bob", 4)) == (1, 2)
    assert mm.has_agent("sam") and mm.agent_customers("sam") == frozenset()
    with pytest.raises(RoutingError):
        mm.requeue_call("bob", 5)


def test_a_requeued_customer_is_offered_to_their_free_agent_first():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "ann", GENERAL, 1)
    mm.enqueue("bob", GENERAL, 2)
    assert offers(mm.requeue_call("ann", 3)) == [("ann", "sam")]


def test_a_decline_cooloff_ends_when_that_agent_logs_out():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.decline(offer.offer_id, "sam", 2)
    mm.remove_agent("sam", 3)
    assert offers(mm.add_agent("sam", 4, available=True)) == [("ann", "sam")]


# --------------------------------------------------- suspend, resume and leave


def test_suspended_customer_keeps_their_place_and_is_not_offered():
    mm = make()
    mm.add_agent("sam", 0)
    for now, customer in enumerate(["ann", "bob"]):
        mm.enqueue(customer, GENERAL, now)
    assert mm.suspend("ann", 2) == []
    assert mm.customer_state("ann") is CustomerState.SUSPENDED
    assert position(mm, "bob", 2) == 1
    mm.enqueue("cat", GENERAL, 3)
    assert offers(mm.set_available("sam", True, 4)) == [("bob", "sam")]
    mm.resume("ann", 5)
    assert (position(mm, "ann", 5), position(mm, "cat", 5)) == (1, 2)
    assert mm.resume("ann", 6) == []  # not suspended: nothing to do


def test_suspending_an_offered_customer_frees_the_agent_for_the_next():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 1))
    mm.enqueue("bob", GENERAL, 2)
    events = mm.suspend("ann", 3)
    assert events[0] == OfferWithdrawn(offer.offer_id, "ann", "sam", "customer_left")
    # Regression: Sam's seat stayed empty while Bob waited.
    assert offers(events) == [("bob", "sam")]
    assert mm.customer_state("ann") is CustomerState.SUSPENDED


def test_suspend_during_a_call_changes_nothing():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    serve(mm, "ann", GENERAL, 1)
    assert mm.suspend("ann", 2) == []
    assert mm.customer_state("ann") is CustomerState.IN_CALL


def test_resumed_customer_waits_for_their_agent_within_the_window():
    mm = make(affinity_window_s=100)
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    mm.choose("ann", True, 11)
    mm.suspend("ann", 12)
    assert mm.end_call("first", 13) == [CallEnded("first", "sam", "completed", requeued=False)]
    serve(mm, "bob", GENERAL, 14)
    mm.resume("ann", 15)
    assert mm.customer_state("ann") is CustomerState.WAITING_FOR_AGENT
    assert offers(mm.end_call("bob", 16)) == [("ann", "sam")]


def test_resumed_customer_whose_agent_logged_out_goes_back_to_the_queue():
    mm = make(affinity_window_s=100)
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.add_agent("lea", 1)
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    mm.choose("ann", True, 11)
    mm.suspend("ann", 12)
    mm.remove_agent("sam", 13)
    mm.set_available("lea", True, 14)  # takes "first", who went back to the head
    mm.resume("ann", 15)
    # Regression: she was held for Sam, who had gone, until the window ran out.
    assert mm.customer_state("ann") is CustomerState.WAITING
    mm.add_agent("max", 16)
    assert offers(mm.set_available("max", True, 17)) == [("ann", "max")]


def test_resumed_after_the_window_goes_back_to_the_queue():
    mm = make(affinity_window_s=100)
    mm.add_agent("sam", 0, available=True)
    serve(mm, "first", GENERAL, 0)
    mm.enqueue("ann", GENERAL, 10, last_agent="sam")
    mm.choose("ann", True, 11)
    mm.suspend("ann", 12)
    mm.resume("ann", 200)
    assert mm.customer_state("ann") is CustomerState.WAITING


def test_leaving_counts_as_abandoned_unless_in_a_call():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    serve(mm, "inc", GENERAL, 0)
    offer = only_offer(mm.enqueue("off", GENERAL, 1))
    for customer in ("wai", "sus"):
        mm.enqueue(customer, GENERAL, 2)
    mm.suspend("sus", 3)
    mm.enqueue("cho", GENERAL, 4, last_agent="sam")
    assert mm.customer_state("cho") is CustomerState.CHOOSING
    events = mm.leave("inc", 5)
    assert events[0] == CallEnded("inc", "sam", reason="customer_left", requeued=False)
    assert offers(events) == [("cho", "sam")]  # the seat goes to who waits for Sam
    events = mm.leave("off", 6)
    assert events[0] == OfferWithdrawn(offer.offer_id, "off", "sam", "customer_left")
    assert offers(events) == [("wai", "sam")]
    for customer in ("wai", "sus", "cho"):
        mm.leave(customer, 7)
    (stats,) = mm.queue_stats(8)
    assert (stats.waiting, stats.abandoned, stats.answered) == (0, 4, 1)
    with pytest.raises(RoutingError):
        mm.leave("wai", 9)


# -------------------------------------------------- handle times and waits


def test_end_call_measures_handle_time_and_feeds_the_estimator():
    handle_times = HandleTimes(prior_s=180, alpha=0.2)
    mm = make(handle_times=handle_times)
    mm.add_agent("sam", 0, skills=["billing"], available=True)
    serve(mm, "ann", BILLING, 10)
    assert mm.end_call("ann", 110) == [CallEnded("ann", "sam", "completed", requeued=False)]
    # EWMA from the prior: 180 + 0.2 * (100 - 180) = 164; other queues keep the prior.
    assert handle_times.mean(BILLING) == pytest.approx(164)
    assert handle_times.mean(GENERAL) == 180
    serve(mm, "bob", BILLING, 120)
    mm.enqueue("cat", BILLING, 121)
    mm.enqueue("dan", BILLING, 122)
    # One seat, busy: Cat needs one departure, Dan two.
    assert mm.status("cat", 122).expected_wait_s == pytest.approx(164)
    assert mm.status("dan", 122).expected_wait_s == pytest.approx(328)
    assert mm.statuses(122)["dan"] == mm.status("dan", 122)


def test_expected_wait_formula():
    # (ahead - free + 1) * mean / slots; nothing when someone is free for you; None with no seat.
    assert expected_wait(ahead=0, free=1, slots=2, mean_handle_s=100) == 0
    assert expected_wait(ahead=0, free=0, slots=2, mean_handle_s=100) == 50
    assert expected_wait(ahead=3, free=1, slots=2, mean_handle_s=100) == 150
    assert expected_wait(ahead=3, free=0, slots=0, mean_handle_s=100) is None
    times = HandleTimes(prior_s=100, alpha=0.5)
    times.record("q", -5)  # a clock hiccup never makes a negative handle time
    assert times.mean("q") == 50


def test_expected_wait_counts_every_available_eligible_seat():
    mm = make()
    mm.add_agent("sam", 0, capacity=2, available=True)
    mm.add_agent("lea", 0, available=True)
    mm.add_agent("away", 0)  # not counted
    for now, customer in enumerate(["a", "b", "c", "d", "e"]):
        mm.enqueue(customer, GENERAL, now)
    # Three seats taken by a, b, c; d and e wait: (0 - 0 + 1) * 180 / 3 and (1 + 1) * 180 / 3.
    assert mm.status("d", 5).expected_wait_s == pytest.approx(60)
    assert mm.status("e", 5).expected_wait_s == pytest.approx(120)
    assert mm.status("a", 5).position is None and mm.status("a", 5).state is CustomerState.OFFERED


def test_changed_queues_name_the_queues_whose_statuses_may_have_moved():
    mm = make()
    mm.add_agent("sam", 0, skills=["billing"])  # away
    mm.enqueue("ann", GENERAL, 1)
    mm.enqueue("bob", TECH, 2)
    mm.enqueue("cat", BILLING, 3)
    assert mm.take_changed_queues() == {GENERAL, TECH, BILLING}
    assert mm.take_changed_queues() == set()
    mm.leave("bob", 4)
    assert mm.take_changed_queues() == {TECH}
    # Sam's seats count in every queue he serves: general and billing, not tech.
    assert offers(mm.set_available("sam", True, 5)) == [("ann", "sam")]
    assert mm.take_changed_queues() == {GENERAL, BILLING}
    assert set(mm.statuses(5, {BILLING})) == {"cat"}
    assert set(mm.statuses(5, {GENERAL})) == {"ann"}  # offered: position None
    assert mm.statuses(5, set()) == {}
    assert mm.statuses(5) == {"ann": mm.status("ann", 5), "cat": mm.status("cat", 5)}


def test_status_changes_name_only_the_customers_who_may_have_moved():
    mm = make()
    mm.add_agent("sam", 0, skills=["tech"])  # away: tech waits are unknown, general too
    for now, customer in enumerate(["a", "b", "c", "d"]):
        mm.enqueue(customer, TECH, now)
    mm.enqueue("g", GENERAL, 4)
    first = mm.take_status_changes(5)
    assert {s.customer_id: s.position for s in first} == {"a": 1, "b": 2, "c": 3, "d": 4, "g": 1}
    assert len(mm.take_status_changes(5)) == 0
    mm.enqueue("e", TECH, 6)  # at the back: nobody else moves
    assert [(s.customer_id, s.position) for s in mm.take_status_changes(6)] == [("e", 5)]
    mm.leave("b", 7)  # everyone behind b moves up one; a stays where they were
    assert [(s.customer_id, s.position) for s in mm.take_status_changes(7)] == [("c", 2), ("d", 3), ("e", 4)]
    mm.suspend("d", 8)  # d leaves the line (their status says suspended); e moves up
    moved = {s.customer_id: (s.state, s.position) for s in mm.take_status_changes(8)}
    assert moved == {"d": (CustomerState.SUSPENDED, 3), "e": (CustomerState.WAITING, 3)}
    # Sam's seat moves every wait in the queues he serves, so all of them are named.
    assert offers(mm.set_available("sam", True, 9)) == [("a", "sam")]
    changes = mm.take_status_changes(9)
    named = {s.customer_id: s for s in changes}
    assert set(named) == {"a", "c", "d", "e", "g"}
    assert all(status == mm.status(customer_id, 9) for customer_id, status in named.items())
    assert named["a"].state is CustomerState.OFFERED and named["c"].expected_wait_s == pytest.approx(180)


def test_status_changes_count_the_seats_of_an_agent_who_came_back_with_other_skills():
    mm = make()
    mm.add_agent("sam", 0, available=True)  # general only
    mm.enqueue("ann", TECH, 1)
    mm.take_status_changes(1)
    mm.remove_agent("sam", 2)  # no queue he served changed: nothing is counted yet
    mm.add_agent("sam", 3, skills=["tech"])  # back, away, with tech
    mm.set_available("sam", True, 4)
    mm.take_status_changes(4)
    mm.enqueue("bob", TECH, 5)  # ann was offered to sam: bob waits for his seat
    named = {status.customer_id: status for status in mm.take_status_changes(5)}
    assert named["bob"] == mm.status("bob", 5) and named["bob"].expected_wait_s == pytest.approx(180)


def test_queue_stats_and_service_level():
    mm = make(service_target_s=20)
    mm.add_agent("sam", 0, skills=["billing"], available=True)
    assert mm.queue_stats(0) == []
    one = only_offer(mm.enqueue("fast", BILLING, 0))
    mm.accept(one.offer_id, "sam", 10)  # answered in 10 s: within target
    mm.enqueue("slow", BILLING, 5)
    mm.enqueue("gen", GENERAL, 8)
    two = only_offer(mm.end_call("fast", 40))
    assert two.customer_id == "slow"
    mm.accept(two.offer_id, "sam", 40)  # 35 s: over target
    mm.enqueue("late", BILLING, 45)
    stats = {s.key: s for s in mm.queue_stats(50)}
    billing, general = stats[BILLING], stats[GENERAL]
    assert (billing.waiting, billing.longest_wait_s, billing.answered, billing.answered_in_target) == (
        1,
        5,
        2,
        1,
    )
    assert billing.service_level == 0.5
    assert (general.waiting, general.longest_wait_s, general.service_level) == (1, 42, None)


# ---------------------------------------------------------------------- time


def test_next_deadline_is_none_with_nothing_to_expire():
    mm = make()
    assert mm.next_deadline() is None
    mm.add_agent("sam", 0)
    mm.enqueue("ann", GENERAL, 1)
    assert mm.next_deadline() is None
    assert mm.tick(1000) == []


# ----------------------------------------------------------------- bad calls


def test_bad_ids_and_states_raise_routing_error():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 1))
    with pytest.raises(RoutingError):
        mm.add_agent("sam", 2)
    with pytest.raises(RoutingError):
        mm.add_agent("zero", 2, capacity=0)
    with pytest.raises(RoutingError):
        mm.enqueue("ann", GENERAL, 2)
    for call in (
        lambda: mm.set_available("nobody", True, 2),
        lambda: mm.remove_agent("nobody", 2),
        lambda: mm.agent_customers("nobody"),
        lambda: mm.status("nobody", 2),
        lambda: mm.leave("nobody", 2),
        lambda: mm.suspend("nobody", 2),
        lambda: mm.resume("nobody", 2),
        lambda: mm.choose("ann", True, 2),  # not choosing
        lambda: mm.end_call("ann", 2),  # offered, not in a call
        lambda: mm.accept(offer.offer_id, "lea", 2),  # someone else's offer
        lambda: mm.decline("offer-999", "sam", 2),
    ):
        with pytest.raises(RoutingError):
            call()
    mm.tick(offer.expires_at)  # expired
    with pytest.raises(RoutingError):
        mm.accept(offer.offer_id, "sam", offer.expires_at)
    assert mm.customer_state("nobody") is None and mm.customer_agent("nobody") is None
    assert mm.offer("offer-999") is None


def test_paired_reports_the_wait_from_first_joining():
    mm = make()
    mm.add_agent("sam", 0, available=True)
    offer = only_offer(mm.enqueue("ann", GENERAL, 5))
    assert mm.accept(offer.offer_id, "sam", 12) == [Paired("ann", "sam", offer.offer_id, waited_s=7)]
    assert mm.customer_agent("ann") == "sam"


def test_wrap_up_holds_the_seat_without_hiding_the_wait():
    from telepresence.routing import AgentState, Matchmaker, OfferMade, QueueKey

    mm = Matchmaker(wrap_up=True)
    mm.add_agent("sam", 0.0, available=True)
    [offer] = mm.enqueue("ann", QueueKey(), 1.0)
    mm.accept(offer.offer_id, "sam", 2.0)
    mm.enqueue("bob", QueueKey(), 3.0)
    events = mm.end_call("ann", 100.0)
    assert not [e for e in events if isinstance(e, OfferMade)]  # no offer during wrap-up
    assert mm.agent_states() == {"sam": AgentState.WRAP_UP.value}
    # Sam is coming back: Bob's wait is estimated from Sam's seat, not unknown.
    assert mm.status("bob", 101.0).expected_wait_s is not None
    [offer] = [e for e in mm.end_wrap_up("sam", 110.0, available=True) if isinstance(e, OfferMade)]
    assert offer.customer_id == "bob"


def test_wrap_up_can_end_away_and_a_returning_customer_may_wait_for_an_agent_in_wrap_up():
    from telepresence.routing import ChoiceOffered, Matchmaker, OfferMade, QueueKey

    mm = Matchmaker(wrap_up=True)
    mm.add_agent("sam", 0.0, available=True)
    [offer] = mm.enqueue("ann", QueueKey(), 1.0)
    mm.accept(offer.offer_id, "sam", 2.0)
    mm.end_call("ann", 50.0)
    [choice] = mm.enqueue("ann", QueueKey(), 51.0, last_agent="sam")
    assert isinstance(choice, ChoiceOffered) and choice.agent_wait_s is not None
    mm.choose("ann", True, 52.0)
    assert mm.end_wrap_up("sam", 60.0, available=False) == []
    assert mm.agent_states() == {"sam": "away"}
    [offer] = [e for e in mm.set_available("sam", True, 70.0) if isinstance(e, OfferMade)]
    assert offer.customer_id == "ann"
