"""The benchmark's lean WebSocket reader against ``websockets``' own server-side protocol
(sans-I/O): handshakes, frames of every length, fragments, compression, pings, bad frames."""

from __future__ import annotations

import json

import pytest
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.server import ServerProtocol

from benchmarks.matchmaker_wire import (
    PING,
    PONG,
    TEXT,
    FrameReader,
    WireError,
    check_handshake,
    client_frame,
    handshake_request,
    new_key,
)


def _open(*, deflate: bool, no_context_takeover: bool = False) -> tuple[ServerProtocol, FrameReader]:
    extensions = [ServerPerMessageDeflateFactory(server_no_context_takeover=no_context_takeover)]
    server = ServerProtocol(extensions=extensions if deflate else None)
    key = new_key()
    server.receive_data(handshake_request("127.0.0.1", 8000, "/ws", key))
    [request] = server.events_received()
    server.send_response(server.accept(request))
    head, _, rest = server.data_to_send()[0].partition(b"\r\n\r\n")
    assert rest == b""
    inflater = check_handshake(head, key)
    assert (inflater is not None) == deflate
    return server, FrameReader(inflater)


@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("size", [0, 5, 125, 126, 65_535, 65_536, 200_000])
def test_every_length_of_message_is_read_whole_and_in_order(deflate: bool, size: int):
    server, reader = _open(deflate=deflate)
    texts = [json.dumps({"type": "queue_status", "position": i, "pad": "x" * size}) for i in range(3)]
    for text in texts:
        server.send_text(text.encode())
    wire = b"".join(server.data_to_send())
    # Fed in awkward pieces: a frame's head and payload split anywhere.
    got = []
    for start in range(0, len(wire), 7):
        got += reader.feed(wire[start : start + 7])
    assert got == [(TEXT, text.encode()) for text in texts]


def test_a_fragmented_message_with_a_ping_between_its_fragments():
    server, reader = _open(deflate=False)
    server.send_text(b'{"type": ', fin=False)
    server.send_ping(b"are you there")
    server.send_continuation(b'"queue_status",', fin=False)
    server.send_continuation(b' "position": 4}', fin=True)
    got = reader.feed(b"".join(server.data_to_send()))
    assert got == [(PING, b"are you there"), (TEXT, b'{"type": "queue_status", "position": 4}')]


def test_compression_with_a_fresh_stream_per_message():
    server, reader = _open(deflate=True, no_context_takeover=True)
    for i in range(3):
        server.send_text(json.dumps({"type": "queue_status", "position": i}).encode())
    got = reader.feed(b"".join(server.data_to_send()))
    assert [json.loads(payload)["position"] for _, payload in got] == [0, 1, 2]


def test_the_server_reads_the_clients_masked_frames():
    server, _ = _open(deflate=False)
    body = json.dumps({"type": "join", "name": "x" * 300}).encode()
    long = b"x" * 70_000
    server.receive_data(client_frame(TEXT, body) + client_frame(PONG, b"") + client_frame(TEXT, long))
    frames = server.events_received()
    assert [(f.opcode, f.data) for f in frames] == [
        (Opcode.TEXT, body),
        (Opcode.PONG, b""),
        (Opcode.TEXT, long),
    ]


def test_a_refused_or_forged_handshake_is_an_error():
    key = new_key()
    with pytest.raises(WireError, match="refused"):
        check_handshake(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0", key)
    with pytest.raises(WireError, match="Accept"):
        check_handshake(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: bogus", key)


@pytest.mark.parametrize(
    "frame, why",
    [
        (b"\x81\x85" + b"\x00" * 9, "masked"),  # a server frame may not be masked
        (b"\xc1\x01x", "reserved"),  # compressed, but no compression was agreed
        (b"\x80\x01x", "continuation"),  # a continuation of nothing
        (b"\x09\x00", "fragmented control"),
        (b"\x82\x7f" + (1 << 40).to_bytes(8, "big"), "frame of"),
    ],
)
def test_a_frame_that_breaks_the_protocol_is_an_error(frame: bytes, why: str):
    _, reader = _open(deflate=False)
    with pytest.raises(WireError, match=why):
        reader.feed(frame)


def test_a_new_message_inside_a_fragmented_one_is_an_error():
    _, reader = _open(deflate=False)
    assert reader.feed(b"\x01\x01a") == []
    with pytest.raises(WireError, match="before the last one ended"):
        reader.feed(b"\x81\x01b")
