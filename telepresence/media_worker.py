"""A media worker process: whole rooms, driven by the control process over one socket.

``telepresence serve`` starts one per core (``media_workers``). Each owns the rooms the
control process creates in it, so a call's packets, decoding, composing and encoding
stay in one process and one event loop, and the machine's cores each run a share of
the calls. The messages are those of :mod:`telepresence.worker_wire`.

The worker ends when it is told to stop or when its socket closes (the control process
is gone, however it went): it closes its rooms, bounded, and exits, so it is never left
behind as an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from aiortc import RTCIceServer

from media.answer import AIOICE_DEFAULTS, IceGathering, MediaError
from media.heap import map_large_blocks
from media.peers import Bitrate
from media.room import Role
from telepresence import worker_wire as wire
from telepresence.room_cpu import CpuMeter
from telepresence.room_handle import LocalRoom

logger = logging.getLogger(__name__)

# Ops the control process awaits a reply to (the rest are one-way).
REQUESTS = (
    *("answer", "camera", "release_camera", "monitor", "release_monitor"),
    *("screen_shared", "greet", "close"),
)


def run(
    sock: socket.socket,
    name: str,
    log_level: str,
    stats_interval_s: float,
    close_timeout_s: float,
    startup_note: str | None = None,
) -> None:
    """The worker process's main (after telepresence.worker_main has set its signals and priority;
    ``startup_note``: what went wrong there, logged once logging is set up)."""
    logging.basicConfig(
        level=log_level.upper(), format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s"
    )
    if startup_note is not None:
        logger.warning("%s", startup_note)
    map_large_blocks()  # calls' frames must not fragment the heap (media/heap.py)
    asyncio.run(MediaWorker(name, stats_interval_s, close_timeout_s).run(sock))


def _ice_server(server: str | dict[str, Any]) -> RTCIceServer:
    """An RTCIceServer dict from the control process ({urls, username?, credential?}); a bare
    URL string is what an older control process sent."""
    return RTCIceServer(urls=server) if isinstance(server, str) else RTCIceServer(**server)


class MediaWorker:
    """The rooms of one worker process and the loop that serves the control process."""

    def __init__(self, name: str, stats_interval_s: float, close_timeout_s: float) -> None:
        self.name = name
        self._close_timeout_s = close_timeout_s
        self.rooms: dict[str, LocalRoom] = {}
        self._stats_interval_s = stats_interval_s
        self._meter = CpuMeter()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, sock: socket.socket) -> None:
        reader, self._writer = await asyncio.open_connection(sock=sock)
        self._send({"event": "hello", "pid": os.getpid()})
        stats = asyncio.create_task(self._push_stats(), name=f"{self.name} stats")
        try:
            while (message := await wire.read(reader)) is not None and message.get("op") != "stop":
                try:
                    self._dispatch(message)
                except Exception:
                    # A bad message (a bug) costs that message, not this worker's other calls.
                    logger.exception("%s: could not apply %r", self.name, message.get("op"))
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats
            await self._close_all()
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    # ---------------------------------------------------------------- input

    def _dispatch(self, message: dict[str, Any]) -> None:
        op, room_id = message.get("op"), message.get("room", "")
        if op == "create":
            self._create(room_id, message)
            return
        room = self.rooms.get(room_id)
        if op in REQUESTS:
            self._spawn(self._request(op, room_id, room, message), f"{self.name} {op} {room_id}")
        elif room is None:
            return  # closed already: a late one-way message has nothing to act on
        elif op == "set_layout":
            room.set_layout(message["layout"])
        elif op == "screen_limits":
            room.set_screen_limits(message["max_fps"], float(message["scale"]))
        elif op == "agent_name":
            room.set_agent_name(message["name"])
        elif op == "stat":
            room.record_stat(message["name"], float(message["value"]))
        elif op == "say":
            room.say(message["text"])
        else:
            logger.warning("unknown op %r", op)

    def _create(self, room_id: str, message: dict[str, Any]) -> None:
        def on_peer_state(role: Role, state: str) -> None:
            self._send({"event": "peer_state", "room": room_id, "role": role, "state": state})

        self.rooms[room_id] = LocalRoom(
            label=message["label"],
            agent_name=message["agent_name"],
            size=message["size"],
            fps=message["fps"],
            codec=message["codec"],
            bitrate=Bitrate(),
            ice_servers=[_ice_server(server) for server in message["ice_servers"]],
            ice_transport_policy=message.get("ice_transport_policy", "all"),
            gathering=IceGathering(tuple(gathering["addresses"]), gathering["timeout_s"])
            if (gathering := message.get("gathering"))
            else AIOICE_DEFAULTS,
            on_peer_state=on_peer_state,
        )

        def on_preview(own_camera: bool) -> None:
            self._send({"event": "preview", "room": room_id, "own_camera": own_camera})

        self.rooms[room_id].on_preview = on_preview

    async def _request(self, op: str, room_id: str, room: LocalRoom | None, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": message["id"], "ok": True}
        try:
            if op == "close":
                self.rooms.pop(room_id, None)
                if room is not None:
                    await asyncio.wait_for(room.close(), self._close_timeout_s)
            elif room is None:
                raise MediaError("call_ended", "this call's media is closed")
            elif op == "answer":
                reply["sdp"] = await room.answer(message["role"], message["sdp"])
                reply["missing"] = room.missing.get(message["role"], [])
            elif op == "camera":
                reply["sdp"] = await room.answer_camera(message["sdp"])
            elif op == "release_camera":
                await room.release_camera()
            elif op == "monitor":
                reply["sdp"] = await room.answer_monitor(message["sdp"])
            elif op == "release_monitor":
                await room.release_monitor(message.get("answer"))
            elif op == "greet":
                await room.greet(message["look"])
            else:
                await room.screen_shared(bool(message["active"]))
            if room is not None:
                reply["layout"] = room.layout
        except MediaError as exc:
            reply = {"id": message["id"], "error": [exc.code, exc.message]}
        except Exception as exc:
            # Whatever one room's request raises, the worker and its other rooms carry on.
            logger.exception("%s: %s failed", room_id, op)
            reply = {"id": message["id"], "error": ["media_unavailable", f"{op} failed: {exc}"[:300]]}
        self._send(reply)

    # --------------------------------------------------------------- output

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(wire.encode(message))

    async def _push_stats(self) -> None:
        """Every interval: this process's CPU and each room's share, and the rooms' receipts."""
        while True:
            await asyncio.sleep(self._stats_interval_s)
            try:
                self._meter.sample(self.rooms.items())
                rooms = {
                    room_id: {
                        "cpu_pct": self._meter.room_pct.get(room_id),
                        "stages": room.receipt_summary(),
                        "screen_limits": _screen_limits(room),
                    }
                    for room_id, room in self.rooms.items()
                }
            except Exception:
                # A figure that cannot be had must not silence the worker: the watchdog would
                # take that for a hang and end every call here.
                logger.exception("stats failed; reporting the process alone")
                rooms = {}
            self._send({"event": "stats", "cpu_pct": round(self._meter.process_pct, 1), "rooms": rooms})

    # -------------------------------------------------------------- closing

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_all(self) -> None:
        """Close every room (bounded), then cancel whatever requests are left."""
        rooms, self.rooms = list(self.rooms.values()), {}
        closing = {asyncio.ensure_future(room.close()) for room in rooms}
        if closing:
            _, stuck = await asyncio.wait(closing, timeout=self._close_timeout_s)
            closing = stuck
        for task in closing | self._tasks:
            task.cancel()
        if closing | self._tasks:
            await asyncio.wait(closing | self._tasks)


def _screen_limits(room: LocalRoom) -> list[float | None]:
    """What a room holds its screen tile to: [max_fps (None: none), scale]."""
    limits = room.compositor.screen_limits
    return [limits.max_fps, limits.scale]
