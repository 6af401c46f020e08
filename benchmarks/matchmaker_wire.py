"""A lean WebSocket client's wire format (RFC 6455, RFC 7692), no I/O: the benchmark's readers.

The matchmaker's distributed run reads 3,000 ``queue_status`` messages an event on the same
two cores as the servers it measures. The ``websockets`` client costs ~50 us a message here
(its asyncio protocol, a task per socket, the frame generator); this reader is what a browser
does and no more: the opening handshake checked, every frame parsed (the server's frames are
unmasked, ours masked), fragments joined, compressed messages inflated, pings answered by the
caller. Pure: bytes in, messages out, so it is tested against ``websockets``' own framing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib

TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0
CLOSE, PING, PONG = 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
MAX_MESSAGE = 1 << 20  # a benchmark reader's bound: the server's messages are a few hundred bytes


class WireError(Exception):
    """The server broke the protocol (or refused the handshake)."""


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def handshake_request(host: str, port: int, path: str, key: str, *, deflate: bool = True) -> bytes:
    """The opening handshake a browser sends (permessage-deflate offered, as browsers do)."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Inflater:
    """permessage-deflate as the server accepted it: one stream, or one per message."""

    def __init__(self, params: dict[str, str]) -> None:
        self._bits = int(params.get("server_max_window_bits") or 15)
        self._fresh_each = "server_no_context_takeover" in params
        self._stream = zlib.decompressobj(-self._bits)

    def inflate(self, data: bytes) -> bytes:
        if self._fresh_each:
            self._stream = zlib.decompressobj(-self._bits)
        out = self._stream.decompress(data + _DEFLATE_TAIL, MAX_MESSAGE)
        if self._stream.unconsumed_tail:
            raise WireError(f"a compressed message inflates past {MAX_MESSAGE} bytes")
        return out


def check_handshake(head: bytes, key: str) -> Inflater | None:
    """The server's answer (its head, up to the blank line): accepted, and with which extension."""
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        raise WireError(f"the server refused the WebSocket: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        raise WireError("the server's Sec-WebSocket-Accept does not match the key")
    extension = headers.get("sec-websocket-extensions", "")
    if not extension:
        return None
    name, *raw = [part.strip() for part in extension.split(";")]
    if name != "permessage-deflate" or "," in extension:
        raise WireError(f"the server chose an extension not offered: {extension!r}")
    params = dict((p.partition("=")[0].strip(), p.partition("=")[2].strip().strip('"')) for p in raw)
    return Inflater(params)


def client_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame from a client: masked, as RFC 6455 requires of clients."""
    mask = os.urandom(4) if mask is None else mask
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    if n == 0:
        return head + mask
    repeated = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return head + mask + masked


class FrameReader:
    """The server's bytes in, whole messages out: ``(opcode, payload)``, control frames included."""

    def __init__(self, inflater: Inflater | None = None) -> None:
        self._inflater = inflater
        self._buffer = b""
        self._parts: list[bytes] = []
        self._opcode = 0
        self._compressed = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        messages: list[tuple[int, bytes]] = []
        at, end = 0, len(buffer)
        while end - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            if second & 0x80:
                raise WireError("a server frame was masked")
            n, start = second & 0x7F, at + 2
            if n == 126:
                if end - at < 4:
                    break
                n, start = int.from_bytes(buffer[at + 2 : at + 4], "big"), at + 4
            elif n == 127:
                if end - at < 10:
                    break
                n, start = int.from_bytes(buffer[at + 2 : at + 10], "big"), at + 10
            if n > MAX_MESSAGE:
                raise WireError(f"a frame of {n} bytes")
            if end - start < n:
                break
            at = start + n
            message = self._frame(first, buffer[start:at])
            if message is not None:
                messages.append(message)
        self._buffer = buffer[at:]
        return messages

    def _frame(self, first: int, payload: bytes) -> tuple[int, bytes] | None:
        final, rsv1, opcode = first & 0x80, first & 0x40, first & 0x0F
        if first & 0x30 or (rsv1 and (self._inflater is None or opcode == CONTINUATION)):
            raise WireError(f"reserved bits set in a frame: {first:#04x}")
        if opcode >= CLOSE:  # control frames: never fragmented, may come between fragments
            if not final:
                raise WireError("a fragmented control frame")
            return opcode, payload
        if opcode == CONTINUATION:
            if not self._parts:
                raise WireError("a continuation frame with no message begun")
        elif self._parts:
            raise WireError("a new message before the last one ended")
        else:
            self._opcode, self._compressed = opcode, bool(rsv1)
        self._parts.append(payload)
        if not final:
            if sum(map(len, self._parts)) > MAX_MESSAGE:
                raise WireError(f"a message past {MAX_MESSAGE} bytes")
            return None
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        if self._compressed:
            assert self._inflater is not None
            data = self._inflater.inflate(data)
        return self._opcode, data
