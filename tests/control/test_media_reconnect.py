"""A side whose media fails (a browser that changed networks) gets ``media_reconnect_s`` to
connect again before the call ends: the room replaces that side's peer, the call goes on."""

from __future__ import annotations

import asyncio

from telepresence.calls import Call, CallState
from telepresence.config import Settings
from telepresence.media_control import MediaControl
from telepresence.metrics import Metrics


def media_control(ended: list[tuple[str, str]], reconnect_s: float) -> MediaControl:
    settings = Settings.load(env={}, media_workers=0, media_reconnect_s=reconnect_s)

    async def end_call(call: Call, reason: str) -> None:
        ended.append((call.id, reason))

    async def requeue(call: Call) -> None:
        raise AssertionError("no worker died")

    return MediaControl(settings, Metrics(), send=lambda *_: None, end_call=end_call, requeue_call=requeue)


def live_call() -> Call:
    call = Call("call-1", "cust-1", "sam", started_at=0.0)
    call.move(CallState.NEGOTIATING)
    call.move(CallState.LIVE)
    return call


async def test_a_side_that_connects_again_within_the_window_keeps_the_call() -> None:
    ended: list[tuple[str, str]] = []
    media = media_control(ended, reconnect_s=0.3)
    call = live_call()
    on_state = media._peer_state_handler(call)
    on_state("customer", "failed")
    await asyncio.sleep(0.1)
    on_state("customer", "connected")  # the browser's fresh connection
    await asyncio.sleep(0.4)
    assert ended == [] and call.active
    await media.stop()


async def test_a_side_that_does_not_come_back_ends_the_call_as_media_failed() -> None:
    ended: list[tuple[str, str]] = []
    media = media_control(ended, reconnect_s=0.2)
    call = live_call()
    on_state = media._peer_state_handler(call)
    on_state("agent", "failed")
    on_state("agent", "failed")  # a second report does not start a second wait
    await asyncio.sleep(0.1)
    assert ended == []
    await asyncio.sleep(0.3)
    assert ended == [("call-1", "media_failed")]
    await media.stop()


async def test_an_ended_call_stops_waiting() -> None:
    ended: list[tuple[str, str]] = []
    media = media_control(ended, reconnect_s=0.2)
    call = live_call()
    media._peer_state_handler(call)("customer", "failed")
    call.end("customer_hung_up")
    media.close(call)
    await asyncio.sleep(0.3)
    assert ended == []
    await media.stop()
