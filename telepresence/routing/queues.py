"""Which queues exist, and their answered/abandoned counts. Pure: no I/O, no clock.

Customers name their queue (skill, language) themselves, so the set of queues must
not grow with what clients send. A queue is *standing* when each of its labels is
general (``""``) or named by the centre: in the configured skills and languages, or
in the token of an agent who logged in (tokens are signed by the centre, so that set
is bounded). A standing queue keeps its counts while empty; any other queue exists
only while someone is in it, and is forgotten with its counts when the last one goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

GENERAL = ""  # the skill (or language) of a customer who picked none


@dataclass(frozen=True, order=True)
class QueueKey:
    """A queue: customers who asked for one skill (``""``: general) in one language (``""``: any)."""

    skill: str = GENERAL
    language: str = GENERAL

    def __str__(self) -> str:
        return f"{self.skill or 'general'}/{self.language or 'any'}"


@dataclass
class Counters:
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0


class QueueRegister:
    """The queues in use and the standing ones, each with its :class:`Counters`."""

    def __init__(self, skills: Iterable[str] = (), languages: Iterable[str] = ()) -> None:
        self._skills = {GENERAL, *skills}
        self._languages = {GENERAL, *languages}
        self._counters: dict[QueueKey, Counters] = {}
        self._occupants: dict[QueueKey, int] = {}
        # One key object per queue, for its customers to share (see key()).
        self._keys: dict[QueueKey, QueueKey] = {}

    def __setstate__(self, state: dict[str, object]) -> None:
        """A register pickled before keys were shared (an older leader's snapshot)."""
        self.__dict__.update(state)
        if "_keys" not in state:
            self._keys = {key: key for key in self._counters}

    def key(self, key: QueueKey) -> QueueKey:
        """The key object of ``key``'s queue if it exists, else ``key``: every customer of a
        queue holds one object, which a centre's snapshot pickles once (a key object each
        was a third of the objects it pickled at 10,000 waiting)."""
        return self._keys.get(key, key)

    def name_labels(self, skills: Iterable[str], languages: Iterable[str]) -> None:
        """The centre names these labels (an agent's token): their queues stand from now on."""
        self._skills.update(skills)
        self._languages.update(languages)

    def is_standing(self, key: QueueKey) -> bool:
        return key.skill in self._skills and key.language in self._languages

    def joined(self, key: QueueKey) -> Counters:
        """A customer is in ``key`` (from joining until they leave or their call ends)."""
        self._occupants[key] = self._occupants.get(key, 0) + 1
        self._keys.setdefault(key, key)
        return self._counters.setdefault(key, Counters())

    def gone(self, key: QueueKey) -> bool:
        """A customer of ``key`` is gone; True if that forgot the queue (empty, not standing)."""
        left = self._occupants[key] - 1
        if left:
            self._occupants[key] = left
            return False
        del self._occupants[key]
        if self.is_standing(key):
            return False
        del self._counters[key]
        del self._keys[key]
        return True

    def counters(self, key: QueueKey) -> Counters:
        return self._counters[key]

    def __iter__(self) -> Iterator[QueueKey]:
        """Every queue that exists: standing ones anyone has joined, and the ones in use."""
        return iter(self._counters)

    def __contains__(self, key: object) -> bool:
        return key in self._counters

    def occupants(self, key: QueueKey) -> int:
        return self._occupants.get(key, 0)
