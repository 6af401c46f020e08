"""A yuv420p frame's planes as numpy views, and a cheap anti-aliased plane resize."""

from __future__ import annotations

import av
import cv2
import numpy as np

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
WARM_MIN = 128 * 1024  # planes this large are read into the cache before their first halving (scale_plane)
CACHE_LINE = 64


def frame_planes(frame: av.VideoFrame) -> Planes:
    """Views (no copy) of a yuv420p frame's Y, U and V planes, without row padding."""
    w, h = frame.width, frame.height
    out = []
    for plane, (pw, ph) in zip(frame.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2)), strict=True):
        out.append(np.frombuffer(plane, np.uint8).reshape(ph, plane.line_size)[:, :pw])
    return out[0], out[1], out[2]


def _array(store: dict, key: object, height: int, width: int) -> np.ndarray:
    """A ``(height, width)`` uint8 array kept in ``store`` under ``key``, allocated once: a fresh
    array of a few hundred KB is mmap'd by malloc, and its page faults show up in the p95."""
    array = store.get(key)
    if array is None or array.shape != (height, width):
        array = store[key] = np.empty((height, width), np.uint8)
    return array


def _work_array(work: dict, role: str, height: int, width: int) -> np.ndarray:
    """A ``(height, width)`` view of ``work``'s buffer for ``role``, the buffer grown to the
    largest size asked for: every plane and input resized with one ``work`` goes through the
    same memory, which therefore stays in the cache (kept per input, two 720p pictures'
    temporaries were more than this machine's 2 MB L2, and each compose began with write misses)."""
    size = height * width
    flat = work.get(role)
    if flat is None or flat.size < size:
        flat = work[role] = np.empty(size, np.uint8)
    return flat[:size].reshape(height, width)


def scale_plane(
    plane: np.ndarray,
    width: int,
    height: int,
    scratch: dict | None = None,
    out: np.ndarray | None = None,
    work: dict | None = None,
) -> np.ndarray:
    """Resize one plane, anti-aliased: halvings first, then one small step.

    A bilinear resize to exactly half size averages 2x2 pixels, so a cascade of
    halvings is a box filter (a mipmap) at a fraction of INTER_AREA's cost: a 720p
    luma plane to 320x180 takes ~0.03 ms this way against ~0.2 ms with INTER_AREA.
    ``scratch`` keeps the output array between calls (and the intermediate halvings too,
    without ``work``): valid until the next call with it. ``work`` keeps the intermediate
    halvings, and may be shared by every plane and every input of one compositor: they are
    used up within the call. The last step writes into ``out`` when given (a view of a canvas:
    no copy after), else into ``scratch``.
    """
    h, w = plane.shape
    if w >= 2 * width and h >= 2 * height and plane.size >= WARM_MIN:
        # The first halving reads the whole source. From a frame that is not in the cache (decoded
        # a while ago, on another core) OpenCV's resize streams it slowly; a plain pass that reads
        # one byte of every cache line (64 bytes) streams it from memory ~2x faster, and the resize
        # then reads it from the cache: no copy, so no warm buffer to write (a copy into one was
        # the way before: 1.2 MB more to write a frame, ~10 % of a PiP's cost, measured here).
        plane[:, ::CACHE_LINE].max()
    step = 0
    while w >= 2 * width and h >= 2 * height:
        w, h = w // 2, h // 2
        last = (w, h) == (width, height)
        if last and out is not None:
            dst = out
        elif last and scratch is not None:
            dst = _array(scratch, (w, h), h, w)
        elif work is not None:
            dst = _work_array(work, f"step{step % 2}", h, w)  # two in turn: a step reads the one before
        elif scratch is not None:
            dst = _array(scratch, (w, h), h, w)
        else:
            dst = None
        plane = cv2.resize(plane, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)
        step += 1
    if (w, h) != (width, height):
        interpolation = cv2.INTER_AREA if width < w or height < h else cv2.INTER_LINEAR
        if out is None and scratch is not None:
            out = _array(scratch, (width, height), height, width)
        plane = cv2.resize(plane, (width, height), dst=out, interpolation=interpolation)
    elif out is not None and plane is not out:
        np.copyto(out, plane)
        plane = out
    return plane
