"""A progress bar on stderr, shared by every suite."""

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` showing a progress bar on stderr (stdout stays clean for JSON)."""
    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True, mininterval=0.2)
