"""Fixtures for tests in network namespaces: a fresh :class:`benchmarks.netlab.Lab` a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.netlab import PREFIX, Lab, cleanup_stale, unavailable
from benchmarks.netlab.namespaces import list_namespaces

UNAVAILABLE = unavailable()
needs_netlab = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"no network namespaces here: {UNAVAILABLE}"
)


@pytest.fixture(scope="session")
def _stale_swept() -> None:
    # What a killed run (kill -9) left; namespaces of live runs are kept.
    cleanup_stale(PREFIX)


@pytest.fixture
def lab(_stale_swept: None) -> Iterator[Lab]:
    """The lab topology (agent's UDP blocked), torn down after the test; checks nothing is left."""
    with Lab() as made:
        yield made
    left = [n for n in list_namespaces() if n.startswith(made.tag + "-")]
    assert left == [], f"namespaces left behind: {left}"
