"""Media of a call whose customer and agent are on different processes of one centre.

Three real ``telepresence serve --redis`` processes on one real Redis: the customer's socket
on one, the agent's on another, and (when /api/status tells which) the leader on the third.
The call's room lives on the agent's process; its offers, answers, layout, screen share and
receipts travel through the leader and the doors' streams. aiortc peers play both browsers,
and one test drives Debian's Chromium on both pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from media.browser import BrowserPeer, ToneTrack
from media.layout import AGENT, SCREEN, SIZES, compute_layout
from media.planes import frame_planes
from media.sources import ScreenTrack, TestCardTrack
from tests.centre.conftest import Centre, eventually
from tests.centre.processes import ServeProcess
from tests.conftest import Client

SIZE = SIZES["360p"]
RED = (200, 0, 0)
MEDIA = {"video_size": "360p", "agent_grace_s": 0.5, "receipt_interval_s": 1}
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_MISSING = (
    f"Debian's Chromium at {CHROMIUM}"
    if not CHROMIUM.exists()
    else "the playwright package"
    if importlib.util.find_spec("playwright") is None
    else None
)


@dataclass
class Sides:
    """Three processes of one centre: the leader, and the two others, one for each party."""

    centre: Centre
    leader: ServeProcess
    customer_side: ServeProcess
    agent_side: ServeProcess


def leading(centre: Centre) -> ServeProcess | None:
    """The process that leads now, or None between two terms.

    Not ``Centre.leader``: its StopIteration, when nobody leads, cannot be set on the asyncio
    future of ``eventually``'s thread, which then never completes."""
    name = centre.alive()[0].status()["leader"]
    return next((process for process in centre.processes if process.node == name), None)


@pytest.fixture
async def sides(centre: Centre) -> Sides:
    await centre.start(3, **MEDIA)
    leader = await eventually(lambda: leading(centre))
    customer_side, agent_side = centre.others(leader)
    return Sides(centre, leader, customer_side, agent_side)


@contextlib.asynccontextmanager
async def a_call(sides: Sides) -> AsyncIterator[tuple[Client, Client, str]]:
    """An agent on ``agent_side`` and a customer on ``customer_side``, paired (auto-answer)."""
    agent = await sides.centre.connect(sides.agent_side, "agent")
    await agent.send("login", token=sides.centre.token("sam"))
    await agent.expect("logged_in")
    await agent.send("auto_answer", enabled=True)
    await agent.send("set_status", status="available")
    await agent.expect("agent_status")
    customer = await sides.centre.join(sides.customer_side, "Ann")
    started = await customer.expect("call_started", timeout=10)
    await agent.expect("call_started", timeout=10)
    yield agent, customer, started["call_id"]


def signalling(client: Client):
    async def answer(role: str, sdp: str) -> str:
        await client.send("webrtc_offer", sdp=sdp)
        return (await client.expect("webrtc_answer", timeout=15))["sdp"]

    return answer


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        assert loop.time() - started < timeout, f"{what} not reached in {timeout} s"
        await asyncio.sleep(0.02)
    return loop.time() - started


async def after(client: Client, earlier: dict, type: str, timeout: float = 5.0) -> dict:
    """The first ``type`` message received after ``earlier`` (not an older one left unread)."""
    start = next(i for i, m in enumerate(client.received) if m is earlier)
    while True:
        message = await client.expect(type, timeout=timeout)
        if next(i for i, m in enumerate(client.received) if m is message) > start:
            return message


def red_band(frame, rect) -> bool:
    """The lower band of a red test card: strong V chroma (as tests/calls/test_media_calls.py)."""
    _, _, v = frame_planes(frame)
    cx, cy = (rect.x + rect.width // 2) // 2, (rect.y + rect.height * 7 // 8) // 2
    return float(v[cy - 2 : cy + 2, cx - 2 : cx + 2].mean()) > 170


def rooms_on(process: ServeProcess) -> int:
    """The rooms the process's media holds (itself and its media workers), from its /metrics."""
    text = httpx.get(f"{process.url}/metrics", timeout=3).text
    found = re.findall(r"^telepresence_media_worker_rooms\{[^}]*\} (\S+)$", text, re.M)
    return sum(int(float(count)) for count in found)


def agent_peer() -> BrowserPeer:
    camera = TestCardTrack(640, 360, fps=30, label="", tint=RED)
    return BrowserPeer.agent(camera=camera, screen=ScreenTrack(640, 360, fps=5), mic=ToneTrack(440))


def customer_peer() -> BrowserPeer:
    return BrowserPeer.customer(camera=TestCardTrack(320, 180, fps=15), mic=ToneTrack(880))


async def test_a_call_across_two_processes_carries_media_layout_receipts_and_hangs_up(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            t0 = time.monotonic()
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            negotiated = time.monotonic() - t0

            # The customer sees the composite: the agent's red card filling the frame, not black.
            first = await customer.video(0).wait(15)
            first_frame = time.monotonic() - t0
            assert (first.width, first.height) == (SIZE.width, SIZE.height)
            full = compute_layout(SIZE, "agent", {AGENT})[0].content
            await wait_for(lambda: red_band(customer.video(0).latest, full), what="the agent's red card")
            seen = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > seen + 30, what="30 more composite frames")
            assert float(frame_planes(customer.video(0).latest)[0].mean()) > 40
            await wait_for(lambda: customer.audio.loudness() > 500, what="the agent's voice")
            # The agent hears the customer and sees their camera and the preview of the composite.
            await wait_for(lambda: agent.audio.loudness() > 500, what="the customer's voice")
            assert (await agent.video(2).wait(15)).width == 320  # the customer's camera, forwarded
            assert (await agent.video(0).wait(15)).width == SIZE.width  # the preview
            assert float(frame_planes(agent.video(0).latest)[0].mean()) > 40

            # Screen share and layout reach both sides, wherever their sockets are.
            await agent_ws.send("screen_share", active=True)
            assert (await customer_ws.expect("layout", timeout=10))["layout"] == "screen"
            assert (await agent_ws.expect("layout", timeout=10))["layout"] == "screen"
            shared = await customer_ws.expect("screen_share", timeout=10)
            assert shared["active"] is True and shared["from"] == "agent"
            tiles = {t.name: t.content for t in compute_layout(SIZE, "screen", {AGENT, SCREEN})}
            await wait_for(
                lambda: red_band(customer.video(0).latest, tiles[AGENT]), what="the agent picture-in-picture"
            )
            await agent_ws.send("set_layout", layout="agent")
            assert (await customer_ws.expect("layout", layout="agent", timeout=10))["call_id"] == call_id
            await agent_ws.expect("layout", layout="agent", timeout=10)
            assert customer.video(0).darkest_mean > 40

            # The agent's console gets the live receipt, with the customer's browser figures in it.
            await customer_ws.send("media_stats", stats={"jitter_buffer_ms": 12.5, "decode_ms": 1.5})
            receipt = await agent_ws.expect("receipt", timeout=10)
            while "customer_jitter_buffer_ms" not in receipt["stages"]:
                receipt = await agent_ws.expect("receipt", timeout=10)
            assert receipt["call_id"] == call_id
            assert receipt["stages"]["compose"]["p95"] > 0 and receipt["stages"]["encode"]["p95"] > 0
            assert rooms_on(sides.agent_side) == 1 and rooms_on(sides.customer_side) == 0

            # Hanging up closes the room on the agent's process, and both peers see it close.
            await customer_ws.send("end_call")
            assert (await customer_ws.expect("call_ended", timeout=10))["reason"] == "customer_hung_up"
            assert (await agent_ws.expect("call_ended", timeout=10))["reason"] == "customer_hung_up"
            await eventually(lambda: rooms_on(sides.agent_side) == 0)
            await wait_for(
                lambda: {agent.pc.connectionState, customer.pc.connectionState} == {"closed"},
                timeout=15,
                what="both peers closed",
            )
            print(f"\nacross processes: negotiated in {negotiated:.2f} s, first frame at {first_frame:.2f} s")


async def test_killing_the_process_of_the_room_requeues_the_customer_at_the_head(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)
            seen = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > seen + 10, what="the composite playing")

            killed = time.monotonic()
            sides.agent_side.kill()  # the agent's socket and the call's room go with it
            ended = await customer_ws.expect("call_ended", timeout=10)
            took = time.monotonic() - killed
            assert ended["call_id"] == call_id and ended["requeued"] is True, ended
            assert took < 7, f"call_ended {took:.1f} s after the kill"  # by design at most ~6 s
            status = await after(customer_ws, ended, "queue_status")
            assert status["position"] == 1, status
            print(f"\nroom's process killed: customer re-queued after {took:.2f} s")


async def test_a_customer_requeued_from_a_dead_room_is_taken_by_a_live_agent_with_media(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)
            sides.agent_side.kill()
            ended = await customer_ws.expect("call_ended", timeout=10)
            assert ended["requeued"] is True
            assert (await after(customer_ws, ended, "queue_status"))["position"] == 1

        # The next agent, on the customer's own process, takes them; that call has media too.
        other = await sides.centre.connect(sides.customer_side, "another agent")
        await other.send("login", token=sides.centre.token("kim"))
        await other.expect("logged_in")
        await other.send("auto_answer", enabled=True)
        await other.send("set_status", status="available")
        again = await after(customer_ws, ended, "call_started", timeout=10)
        assert again["call_id"] != call_id and again["agent"]["name"] == "kim", again
        await other.expect("call_started", timeout=10)
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(other))
            await customer.negotiate(signalling(customer_ws))
            full = compute_layout(SIZE, "agent", {AGENT})[0].content
            await customer.video(0).wait(15)
            await wait_for(lambda: red_band(customer.video(0).latest, full), what="the new agent's card")
            assert rooms_on(sides.customer_side) == 1


def media_workers_of(process: ServeProcess) -> list[int]:
    """The pids of a serve process's media workers (its spawned children, not the resource tracker)."""
    pid = process._process.pid  # type: ignore[union-attr]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in map(int, children):
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(child)
    return found


async def test_a_media_worker_dying_on_the_rooms_process_requeues_the_customer_on_another(centre):
    await centre.start(2, **MEDIA)
    [agent_side] = await centre.start(1, media_workers=1, **MEDIA)
    leader = await eventually(lambda: leading(centre))
    customer_side = next(p for p in centre.processes if p not in (leader, agent_side))
    sides = Sides(centre, leader, customer_side, agent_side)
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(20)
            full = compute_layout(SIZE, "agent", {AGENT})[0].content
            await wait_for(lambda: red_band(customer.video(0).latest, full), what="the agent's card")
            assert rooms_on(agent_side) == 1  # in its worker
            await agent_ws.send("set_status", status="away")  # the call carries on; no new offer after it
            await agent_ws.expect("agent_status", status="away")
            [worker] = media_workers_of(agent_side)
            os.kill(worker, signal.SIGKILL)
            ended = await customer_ws.expect("call_ended", timeout=10)
            assert ended["call_id"] == call_id and ended["requeued"] is True, ended
            assert ended["reason"] == "agent_left"  # as on one process (tests/calls/test_workers.py)
            assert (await agent_ws.expect("call_ended", timeout=10))["call_id"] == call_id
            assert (await after(customer_ws, ended, "queue_status"))["position"] == 1
            assert agent_side.running


async def test_the_leader_killed_mid_call_leaves_the_media_alone_and_its_successor_routes_it(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)

            sides.leader.kill()  # the room and both sockets are elsewhere
            killed = time.monotonic()
            seen = customer.video(0).count
            await wait_for(lambda: customer.video(0).count > seen + 60, what="frames while nobody leads")
            successor = await eventually(lambda: (now := leading(sides.centre)) is not sides.leader and now)
            print(f"\na new leader {time.monotonic() - killed:.1f} s after the kill")
            assert successor in (sides.customer_side, sides.agent_side)
            # The new leader knows where the room is (it is in the centre's state).
            await agent_ws.send("set_layout", layout="side_by_side")
            assert (await customer_ws.expect("layout", timeout=10))["layout"] == "side_by_side"
            await customer_ws.send("end_call")
            await agent_ws.expect("call_ended", timeout=10)
            await eventually(lambda: rooms_on(sides.agent_side) == 0)


async def test_a_customer_whose_process_dies_rejoins_on_another_and_media_resumes(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        ticket = next(m for m in customer_ws.received if m["type"] == "welcome")["ticket"]
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)

            sides.customer_side.kill()  # the customer's socket goes; the room (agent's process) stays
            back = await sides.centre.connect(sides.leader, "customer, back")
            await back.send("rejoin", ticket=ticket)
            assert (await back.expect("welcome"))["rejoined"] is True
            resumed = await back.expect("call_started", timeout=10)
            assert resumed["call_id"] == call_id and resumed["rejoined"] is True
            async with customer_peer() as again:  # the page offers afresh on a rejoin
                await again.negotiate(signalling(back))
                await again.video(0).wait(15)
                full = compute_layout(SIZE, "agent", {AGENT})[0].content
                await wait_for(lambda: red_band(again.video(0).latest, full), what="the agent's card again")
                await wait_for(lambda: agent.audio.loudness() > 500, what="the customer's voice again")
                # The room's messages follow the customer to the new socket.
                await agent_ws.send("set_layout", layout="agent")
                assert (await back.expect("layout", timeout=10))["layout"] == "agent"
                assert not [m for m in agent_ws.received if m["type"] == "call_ended"]
                await back.send("end_call")
                await agent_ws.expect("call_ended", timeout=10)
                await eventually(lambda: rooms_on(sides.agent_side) == 0)


async def test_the_agent_opening_the_console_on_another_process_mid_call_keeps_the_room(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent.negotiate(signalling(agent_ws))
            await customer.negotiate(signalling(customer_ws))
            await customer.video(0).wait(15)

            # The newest tab wins: the console opened on the leader's process takes the call over.
            console = await sides.centre.connect(sides.leader, "agent, new console")
            await console.send("login", token=sides.centre.token("sam"))
            logged_in = await console.expect("logged_in")
            assert [c["call_id"] for c in logged_in["calls"]] == [call_id]
            async with agent_peer() as again:  # its page offers afresh; the room stays where it is
                await again.negotiate(signalling(console))
                # Layout "agent": the picture is the agent's camera as it came, so the new console
                # is told to show its own camera and its preview stream is held (media.program).
                preview = await console.expect("preview", timeout=15, source="own_camera")
                assert preview["call_id"] == call_id
                await wait_for(lambda: again.audio.loudness() > 500, what="the customer's voice")
                await console.send("set_layout", layout="side_by_side")
                assert (await customer_ws.expect("layout", timeout=10))["layout"] == "side_by_side"
                assert (await console.expect("layout", timeout=10))["layout"] == "side_by_side"
                await again.video(0).wait(15)  # the preview of the composite, resumed
                assert (await console.expect("preview", timeout=10, source="program"))["call_id"] == call_id
                assert (await console.expect("receipt", timeout=10))["call_id"] == call_id
                assert rooms_on(sides.agent_side) == 1 and rooms_on(sides.leader) == 0
                seen = customer.video(0).count
                await wait_for(lambda: customer.video(0).count > seen + 30, what="the composite playing on")


async def test_a_call_that_ends_while_its_offers_are_on_their_way_leaves_no_room(sides):
    async with a_call(sides) as (agent_ws, customer_ws, call_id):
        async with agent_peer() as agent, customer_peer() as customer:
            await agent_ws.send("webrtc_offer", sdp=await agent.offer())
            await customer_ws.send("webrtc_offer", sdp=await customer.offer())
            await customer_ws.send("media_stats", stats={"jitter_buffer_ms": 12.5})
            await customer_ws.send("end_call")
            await customer_ws.expect("call_ended", timeout=10)
            # What the leader forwarded before the end may still be handled after the room's
            # close (an offer waits for the other's answer): none of it may make a room again.
            await asyncio.sleep(1.5)
            assert rooms_on(sides.agent_side) == 0
            assert "Traceback" not in sides.agent_side.log()


@dataclass
class Door:
    """What benchmarks/chrome.py needs of a server (``url``, ``token``): one process of the centre."""

    url: str
    centre: Centre

    def token(self, name: str) -> str:
        return self.centre.token(name)


@pytest.mark.browser
@pytest.mark.skipif(BROWSER_MISSING is not None, reason=f"needs {BROWSER_MISSING}")
async def test_chromium_customer_on_one_process_sees_the_agent_console_on_another(sides, tmp_path):
    from playwright.async_api import expect

    from benchmarks.chrome import (
        agent_takes_the_call,
        chromium,
        customer_joins,
        is_red,
        new_page,
        playing,
        state,
        until_colours,
        write_card,
    )

    red_camera = write_card(tmp_path / "agent-camera.y4m")
    full = compute_layout(SIZE, "agent", {AGENT})[0].content
    async with chromium() as customers, chromium(camera_clip=red_camera) as agents:
        customer = await new_page(customers, permissions=["camera", "microphone"])
        agent = await new_page(agents, viewport={"width": 1280, "height": 900})
        await customer_joins(customer, sides.customer_side.url)
        await agent_takes_the_call(agent, Door(sides.agent_side.url, sides.centre))
        await expect(state(customer)).to_have_attribute("data-state", "in_call")

        # The customer sees the agent's red camera, frames advancing, through the room on the
        # agent's process; the agent sees the preview and the customer's camera.
        probe = await playing(customer, "remote-video")
        assert probe["width"] > 0, probe
        centre_of_frame = (full.x + full.width // 2, full.y + full.height // 2)
        await until_colours(customer, "remote-video", [(centre_of_frame, is_red), ((40, 40), is_red)])
        await playing(agent, "preview-video")
        await playing(agent, "remote-video")
        assert rooms_on(sides.agent_side) == 1 and rooms_on(sides.customer_side) == 0
        assert not customer.errors and not agent.errors, (customer.errors, agent.errors)
