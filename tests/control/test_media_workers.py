"""Media worker settings and the control <-> worker framing (processes: tests/calls/test_workers.py)."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from telepresence import worker_wire as wire
from telepresence.cli import build_parser
from telepresence.config import Settings


def test_serve_uses_a_worker_per_core_by_default_and_zero_keeps_media_in_process(tmp_path):
    assert Settings.load(env={}).media_workers == len(os.sched_getaffinity(0))
    assert Settings.load(env={"TELEPRESENCE_MEDIA_WORKERS": "3"}).media_workers == 3
    assert Settings.load(env={}, media_workers=0).media_workers == 0
    with pytest.raises(ValueError, match="media_workers"):
        Settings.load(env={"TELEPRESENCE_MEDIA_WORKERS": "-1"})
    with pytest.raises(ValueError, match="media_workers"):
        Settings.load(env={"TELEPRESENCE_MEDIA_WORKERS": "many"})
    assert build_parser().parse_args(["serve", "--media-workers", "0"]).media_workers == 0
    assert build_parser().parse_args(["serve"]).media_workers is None  # the setting decides


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_messages_are_framed_json_objects_and_a_closed_stream_reads_as_none():
    message = {"op": "answer", "id": 7, "sdp": "v=0\r\n" * 500, "room": "r1"}
    reader = reader_of(wire.encode(message) + wire.encode({"event": "hello", "pid": 1}))
    assert await wire.read(reader) == message
    assert await wire.read(reader) == {"event": "hello", "pid": 1}
    assert await wire.read(reader) is None
    assert await wire.read(reader_of(wire.encode(message)[:-3])) is None  # cut short: the other side died


async def test_a_garbled_stream_is_an_error_not_a_message():
    with pytest.raises(ValueError):
        await wire.read(reader_of(struct.pack(">I", wire.MAX_MESSAGE_BYTES + 1)))
    with pytest.raises(ValueError):
        await wire.read(reader_of(struct.pack(">I", 2) + b"[]"))
    with pytest.raises(ValueError):
        await wire.read(reader_of(struct.pack(">I", 3) + b"{x}"))
