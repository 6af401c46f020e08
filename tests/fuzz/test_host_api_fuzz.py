"""Hostile Authorization headers on /api/host (the operators' HTTP API), fuzzed.

Spoiled operator tokens (the damages of tests/fuzz/run_time_values.py), agent tokens,
random bytes, odd schemes, huge values, in UTF-8 and latin-1: never a 500.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, run_server
from tests.fuzz.run_time_values import damage
from tests.fuzz.runner import HYPOTHESIS


def authorization_values(server: LiveServer) -> st.SearchStrategy[bytes]:
    token = server.token("olga", role="operator")
    agent = server.token("sam")

    def spoil(text: str) -> st.SearchStrategy[bytes]:
        return st.builds(
            lambda how, at, char, codec: damage(text, how, at, char).encode(codec, "replace"),
            st.sampled_from(["flip", "truncate", "insert", "append", "no_dot", "swap_halves", "upper"]),
            st.integers(0, 500),
            st.sampled_from(["é", "😀", "中", "ÿ", "\x7f", "=", "."]),
            st.sampled_from(["utf-8", "latin-1"]),
        )

    scheme = st.sampled_from(
        [b"Bearer ", b"bearer ", b"BEARER  ", b"Basic ", b"Bearer", b"", b"Bearer\t", b"Token "]
    )
    body = st.one_of(
        spoil(token),
        st.just(agent.encode()),
        st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\x00" not in b),
        st.sampled_from([b"", b".", b"a.b", b"\xff\xfe", "é.é".encode(), "Ölga".encode("latin-1")]),
        st.sampled_from([b"x" * 5_000, b"A" * 20_000 + b".B", b"\xc3\xa9" * 3_000]),
    )
    return st.builds(lambda s, b: s + b, scheme, body)


async def test_host_api_refuses_hostile_authorization_headers(tmp_path):
    """Never a 500: every hostile header gets 401 (or another 4xx)."""
    async with run_server(tmp_path) as server:
        statuses: Counter[int] = Counter()
        failures: list[str] = []

        @settings(max_examples=150, **HYPOTHESIS)
        @given(authorization_values(server), st.sampled_from(["GET", "POST"]))
        def one(header: bytes, method: str) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                try:
                    response = client.request(
                        method,
                        "/api/host",
                        headers={"Authorization": header},
                        json={"type": "host_interrupt"},
                    )
                except httpx.LocalProtocolError:
                    return  # the client refuses to send it: never reaches the server
                except httpx.RemoteProtocolError:
                    statuses[0] += 1  # the server hung up on a header it will not read: fine
                    return
            statuses[response.status_code] += 1
            if not 400 <= response.status_code < 500:
                failures.append(f"{method} {header[:80]!r} -> {response.status_code} {response.text[:120]}")

        await asyncio.to_thread(one)
        print(f"/api/host statuses: {dict(statuses)}")
        assert statuses[401] > 0
        assert not failures, "\n".join(failures[:10])
