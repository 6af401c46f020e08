"""A centre on Redis refuses to start on a Redis it cannot reach, or on another centre's database."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from telepresence.config import Settings
from telepresence.redis_link import CentreMismatch, RedisUnavailable, centre_fingerprint, open_redis
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "startup-secret-0123456789abcdef"


def serve(tmp_path: Path, redis_url: str, secret: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI as a centre process would be run; (the finished process, seconds it took)."""
    env = {
        **os.environ,
        "TELEPRESENCE_SECRET": secret,
        "TELEPRESENCE_STATE_DIR": str(tmp_path / "state"),
        "TELEPRESENCE_MEDIA_WORKERS": "0",
    }
    env.pop("TELEPRESENCE_REDIS_URL", None)
    port = str(free_port())
    command = [sys.executable, "-m", "telepresence", "serve", "--port", port, "--redis", redis_url]
    started = time.monotonic()
    # A centre that wrongly started would serve forever: the timeout fails the test instead.
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    return done, time.monotonic() - started


def test_serve_says_which_redis_it_cannot_reach_and_exits(tmp_path: Path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done, took = serve(tmp_path, url, SECRET)
    assert done.returncode == 2
    assert url in done.stderr and "cannot reach Redis" in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 10


def test_a_redis_password_is_never_printed(tmp_path: Path):
    port = free_port()
    done, _ = serve(tmp_path, f"redis://:hunter2-secret@127.0.0.1:{port}/0", SECRET)
    assert done.returncode == 2
    assert f"redis://:***@127.0.0.1:{port}/0" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_second_centre_with_another_secret_is_refused(tmp_path: Path, redis_server):
    async def claim() -> None:
        client = await open_redis(redis_server.url, SECRET)
        await client.aclose()

    asyncio.run(claim())
    done, took = serve(tmp_path, redis_server.url, "another-secret-0123456789abcdef")
    assert done.returncode == 2
    assert "belongs to another contact centre" in done.stderr and redis_server.url in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 10


async def test_processes_with_the_same_secret_share_the_database(redis_server):
    first = await open_redis(redis_server.url, SECRET)
    second = await open_redis(redis_server.url, SECRET.encode())  # as auth's secret comes: bytes
    try:
        stored = await first.get("tp:centre")
        assert stored == centre_fingerprint(SECRET) and SECRET not in stored
        with pytest.raises(CentreMismatch, match="another contact centre"):
            await open_redis(redis_server.url, "another-secret-0123456789abcdef")
        other_db = redis_server.url.rsplit("/", 1)[0] + "/1"  # another DB is another centre's to claim
        await (await open_redis(other_db, "another-secret-0123456789abcdef")).aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_is_reported_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1"):
        await open_redis(f"redis://:pw@127.0.0.1:{free_port()}/0", SECRET, timeout_s=1.0)
    assert time.monotonic() - started < 3


async def test_a_redis_that_accepts_but_never_answers_times_out():
    """A host that takes the connection and then says nothing (a hung Redis, a black-holing
    proxy): only the PING's timeout can end the wait, not a refused connect."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="no answer within 0.5 s"):
            await open_redis(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", SECRET, timeout_s=0.5)
        assert time.monotonic() - started < 3
    finally:
        silent.close()


async def test_redis_comes_back_after_a_restart_with_the_claim_kept(redis_server):
    client = await open_redis(redis_server.url, SECRET)
    await client.aclose()
    redis_server.stop()
    with pytest.raises(RedisUnavailable):
        await open_redis(redis_server.url, SECRET, timeout_s=0.5)
    redis_server.start()
    with pytest.raises(CentreMismatch):
        await open_redis(redis_server.url, "another-secret-0123456789abcdef")


def test_the_redis_url_setting_comes_from_the_environment_and_empty_means_none():
    url = "redis://127.0.0.1:6379/3"
    assert Settings.load(env={"TELEPRESENCE_REDIS_URL": url}).redis_url == url
    assert Settings.load(env={"TELEPRESENCE_REDIS_URL": ""}).redis_url is None
    assert Settings.load(env={}).redis_url is None
    with pytest.raises(ValueError, match="redis_url") as refused:
        Settings.load(env={"TELEPRESENCE_REDIS_URL": "http://:pw@example.com"})
    assert "pw" not in str(refused.value)
