"""``serve --certfile --keyfile``: https and wss from uvicorn's TLS, refused plainly when wrong."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import TEST_SECRET, free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def serve(tmp_path: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TELEPRESENCE_STATE_DIR": str(tmp_path), "TELEPRESENCE_SECRET": TEST_SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "telepresence", "serve", "--port", str(port), "--media-workers", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


async def test_serve_with_a_certificate_answers_https_and_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    proc = serve(tmp_path, port, "--certfile", str(cert), "--keyfile", str(key))
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        async with httpx.AsyncClient(verify=trusted, timeout=1) as client:
            for _ in range(200):
                try:
                    response = await client.get(f"https://127.0.0.1:{port}/healthz")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("no https answer")
        assert response.status_code == 200
        async with websockets.connect(f"wss://127.0.0.1:{port}/ws", ssl=trusted) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"
        async with httpx.AsyncClient(timeout=2) as plain:
            with pytest.raises(httpx.HTTPError):  # plain http on the TLS port is not served
                await plain.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert f"https://127.0.0.1:{port}/agent#token=" in out


@pytest.mark.parametrize("case", ["cert_only", "missing_files", "key_not_matching"])
def test_serve_refuses_bad_tls_files_plainly(tmp_path: Path, case: str) -> None:
    cert, key = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    args = {
        "cert_only": ["--certfile", str(cert)],
        "missing_files": ["--certfile", str(tmp_path / "none.pem"), "--keyfile", str(key)],
        "key_not_matching": ["--certfile", str(cert), "--keyfile", str(other_key)],
    }[case]
    proc = serve(tmp_path, free_port(), *args)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out.startswith("error: ") and "Traceback" not in out
