"""The browser tests need Debian's Chromium and the playwright package (never `playwright
install`: it downloads a browser). Without either, none of them is collected, and the test
run's header says why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    MISSING: str | None = f"Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)"
elif importlib.util.find_spec("playwright") is None:
    MISSING = "the playwright package (pip install -e '.[test]')"
else:
    MISSING = None

collect_ignore_glob = ["test_*.py"] if MISSING else []


def pytest_report_header() -> str | None:
    return f"browser tests not collected: they need {MISSING}" if MISSING else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
