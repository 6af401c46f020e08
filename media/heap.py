"""Giving the C heap's free memory back to the operating system when a call's media is closed.

A call's codecs and frames allocate large blocks (x264 and libvpx buffers, decoded
frames, 1.4 MB 720p planes) from glibc's malloc, in several threads' arenas. Once
one such block has been freed, glibc's dynamic mmap threshold rises past it, so
later ones come from the arenas, where freed pages stay mapped: measured here, the
server grew by 3-5 MB per 720p call (no Python object of the call survived it), and
a ``malloc_trim`` after each call kept it flat. See :func:`release_free_memory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _glibc(function: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """``function`` of the C library, or None where it has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")


def release_free_memory() -> bool:
    """Return free heap pages of every malloc arena to the OS (glibc ``malloc_trim(0)``).

    Takes a few milliseconds (3-7 ms after a 720p call here) and is safe from any thread. Returns whether
    anything was released; ``False`` also where the C library has no ``malloc_trim``.
    """
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 256 * 1024


def map_large_blocks() -> bool:
    """Serve every block of 256 KB or more (frames, planes, codec buffers) by its own mmap.

    glibc raises its mmap threshold each time such a block is freed, after which they come
    from the arenas, where they fragment: with the trim alone a server still grew ~19 KB a
    call over 1,000 calls (201 -> 219 MB); with the threshold fixed it held at ~153 MB. Call
    once at start-up. Returns whether the C library took it (``False`` off glibc).
    """
    return bool(_MALLOPT and _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
