"""Tokens, the secret file, settings and the command line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from telepresence.auth import AuthError, Claims, TokenAuthority, load_or_create_secret, parse_ttl
from telepresence.config import Settings

SECRET = b"0123456789abcdef0123"


def test_token_round_trip_and_expiry():
    authority = TokenAuthority(SECRET)
    token = authority.mint(Claims("sam", "agent", ("billing",), ("en", "fr"), expires_at=1000.0))
    claims = authority.verify(token, now=999.0)
    assert (claims.name, claims.role, claims.skills, claims.languages) == (
        "sam",
        "agent",
        ("billing",),
        ("en", "fr"),
    )
    with pytest.raises(AuthError, match="expired"):
        authority.verify(token, now=1000.0)
    with pytest.raises(AuthError, match="signature"):
        TokenAuthority(b"another-secret-of-16+").verify(token, now=0.0)


def test_customer_keys_cannot_be_used_as_staff_tokens():
    authority = TokenAuthority(SECRET)
    key = authority.customer_key("cust-1")
    assert authority.customer_id_from_key(key) == "cust-1"
    with pytest.raises(AuthError, match="customer"):
        authority.verify(key, now=0.0)


def test_secret_is_generated_once_with_0600(tmp_path):
    path = tmp_path / "state" / "secret"
    first = load_or_create_secret(None, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(None, path) == first
    assert load_or_create_secret("from-env-0123456789", path) == b"from-env-0123456789"


def test_ttl_parsing():
    assert parse_ttl("8h") == 8 * 3600 and parse_ttl("30m") == 1800 and parse_ttl("90") == 90
    for bad in ("", "soon", "-1h", "0"):
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_settings_layering(tmp_path):
    config = tmp_path / "telepresence.toml"
    config.write_text('port = 9000\noffer_timeout_s = 10\nhost = "0.0.0.0"\n')
    settings = Settings.load(config, env={"TELEPRESENCE_PORT": "9100"}, host=None)
    assert (settings.port, settings.offer_timeout_s, settings.host) == (9100, 10.0, "0.0.0.0")
    with pytest.raises(ValueError, match="unknown setting"):
        Settings.load(env={}, colour="blue")
    with pytest.raises(ValueError, match="port"):
        Settings.load(env={"TELEPRESENCE_PORT": "eighty"})
    with pytest.raises(ValueError, match="video_codec"):
        Settings.load(env={"TELEPRESENCE_VIDEO_CODEC": "AV1"})
    assert Settings.load(env={"TELEPRESENCE_VIDEO_CODEC": "vp8"}).video_codec == "VP8"


def test_token_command_prints_a_verifiable_token_on_its_last_line(tmp_path):
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(tmp_path)}
    env.pop("TELEPRESENCE_SECRET", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "telepresence",
            "token",
            "sam",
            "--skills",
            "billing,Returns",
            "--languages",
            "en,fr",
            "--ttl",
            "2h",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    token = result.stdout.strip().splitlines()[-1]
    authority = TokenAuthority(load_or_create_secret(None, tmp_path / "secret"))
    claims = authority.verify(token, now=time.time())
    assert claims.skills == ("billing", "returns") and claims.languages == ("en", "fr")
    assert claims.expires_at == pytest.approx(time.time() + 7200, abs=60)
    bad = subprocess.run(
        [sys.executable, "-m", "telepresence", "token", "sam", "--ttl", "forever"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_serve_prints_a_working_agent_link(tmp_path):
    import re
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(tmp_path)}
    env.pop("TELEPRESENCE_SECRET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "telepresence", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        link = None
        deadline = time.time() + 30
        while link is None and time.time() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            match = re.search(rf"http://127\.0\.0\.1:{port}/agent#token=(\S+)", line)
            link = match.group(1) if match else None
        assert link, "serve printed no agent link"
        authority = TokenAuthority(load_or_create_secret(None, tmp_path / "secret"))
        assert authority.verify(link, now=time.time()).role == "agent"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not answer /healthz")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("before", [True, False], ids=["before_serve", "after_serve"])
def test_serve_takes_its_config_file_before_or_after_the_command(tmp_path, monkeypatch, before):
    """``telepresence serve --config FILE`` (the README's form) and ``telepresence --config FILE serve``."""
    from telepresence.cli import _settings, build_parser

    config = tmp_path / "tuned.toml"
    config.write_text('video_size = "540p"\nvideo_fps = 15\n')
    monkeypatch.delenv("TELEPRESENCE_VIDEO_FPS", raising=False)
    monkeypatch.delenv("TELEPRESENCE_VIDEO_SIZE", raising=False)
    argv = ["--config", str(config), "serve"] if before else ["serve", "--config", str(config)]
    settings = _settings(build_parser().parse_args(argv))
    assert (settings.video_size, settings.video_fps) == ("540p", 15)
    assert build_parser().parse_args(["serve"]).config is None  # no file: the defaults
