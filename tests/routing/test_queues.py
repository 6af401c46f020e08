"""The register of queues: one key object per queue, forgotten with the queue. Pure."""

from __future__ import annotations

import pickle

from telepresence.routing import QueueKey
from telepresence.routing.queues import QueueRegister


def test_every_customer_of_a_queue_shares_its_key_object_until_the_queue_is_forgotten():
    register = QueueRegister(skills=("billing",))
    first = QueueKey("sales", "de")
    assert register.key(first) is first  # no such queue yet: the key as given
    register.joined(first)
    again = QueueKey("sales", "de")
    assert register.key(again) is first and again is not first
    register.joined(register.key(again))
    assert not register.gone(first)
    assert register.gone(first)  # empty and not standing: forgotten, and its key object
    assert register.key(again) is again
    standing = QueueKey("billing")
    register.joined(standing)
    assert not register.gone(standing)  # a standing queue stays, and so does its key
    assert register.key(QueueKey("billing")) is standing


def test_a_register_pickled_before_keys_were_shared_shares_them_when_loaded():
    register = QueueRegister()
    key = QueueKey("tech")
    register.joined(key)
    del register._keys  # as a snapshot of the earlier version holds it
    loaded = pickle.loads(pickle.dumps(register))
    stored = next(iter(loaded))
    assert loaded.key(QueueKey("tech")) is stored
