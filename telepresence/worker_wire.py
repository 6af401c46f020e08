"""The framing between the control process and a media worker: small JSON messages.

One stream socket (a socketpair) per worker, each message a 4-byte big-endian length
and a UTF-8 JSON object. Requests from the control process carry an ``id`` and get one
reply with the same ``id`` (``{"id", "ok": true, ...}`` or ``{"id", "error": [code,
message]}``); everything else is one-way (``op`` from the control process, ``event``
from the worker). A closed stream means the other side is gone.

Control -> worker ``op``: ``create`` (room, label, agent_name, size, fps, codec,
ice_servers: RTCIceServer dicts with the room's own TURN credentials,
ice_transport_policy, gathering: {addresses, timeout_s}), ``answer`` (room, role, sdp;
reply: sdp, layout, missing),
``set_layout`` (room, layout), ``screen_shared`` (room, active; reply: layout),
``greet`` (room, look; reply: layout), ``say`` (room, text), ``agent_name`` (room,
name), ``stat`` (room, name, value), ``screen_limits`` (room, max_fps, scale: a shedding
step, telepresence.admission), ``close`` (room; reply), ``stop``.
Worker -> control ``event``: ``hello`` (pid), ``peer_state`` (room, role, state),
``preview`` (room, own_camera: what the agent's preview shows, media.room),
``stats`` (cpu_pct, rooms: {room: {cpu_pct, stages, screen_limits: [max_fps, scale]}}).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # an SDP is a few KB; anything this big is a bug
_LENGTH = struct.Struct(">I")

Message = dict[str, Any]


def encode(message: Message) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return _LENGTH.pack(len(data)) + data


async def read(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None when the other side closed the stream."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        if length > MAX_MESSAGE_BYTES:
            raise ValueError(f"a {length}-byte message between control and worker")
        message = json.loads(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    if not isinstance(message, dict):
        raise ValueError("a message between control and worker must be a JSON object")
    return message
