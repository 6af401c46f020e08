"""Small network probes to run inside the lab's namespaces (``python -m benchmarks.netlab.probe``).

- ``serve --host H --port P``: UDP and TCP on the same port. A UDP datagram ``who`` is
  answered with the address the server saw (``ip:port``); any other datagram is echoed. A TCP
  connection is greeted with the same ``ip:port`` line, then echoed.
- ``who --host H --port P --proto udp|tcp``: prints the address the server saw us come from;
  exit 1 on a timeout or a refusal.
- ``ping --host H --port P --count N --interval-ms I``: UDP echo, one JSON line a reply
  ``{"seq", "sent", "rtt_ms"}`` (``sent`` on CLOCK_MONOTONIC, which namespaces share), then
  ``{"summary": {"sent", "received", "loss", "rtt_p50_ms", ...}}``.

Each runs SCHED_FIFO when allowed, like the impairment forwarder: what they measure is the
network, not the scheduler of a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import statistics
import struct
import sys
import time
from typing import Any

from benchmarks.netlab.forwarder import try_realtime

PING = struct.Struct("!Id")  # seq, monotonic send time


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = f"{addr[0]}:{addr[1]}".encode() if data == b"who" else data
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(_Echo, local_addr=(host, port))

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        writer.write(f"{peer[0]}:{peer[1]}\n".encode())
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_tcp, host, port)
    print(json.dumps({"ready": True}), flush=True)
    async with server:
        await server.serve_forever()


def who(host: str, port: int, proto: str, timeout: float) -> str:
    """The address the probe server at ``host:port`` saw this process come from."""
    if proto == "tcp":
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.makefile().readline().strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(b"who", (host, port))
        return sock.recv(256).decode()


def ping(host: str, port: int, count: int, interval_ms: float, size: int, linger_s: float) -> dict[str, Any]:
    """UDP echo ``count`` times; prints each reply as a JSON line and returns the summary."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    padding = b"\0" * max(0, size - PING.size)
    rtts: dict[int, float] = {}
    start = time.monotonic()
    sent = 0
    end = start + count * interval_ms / 1000 + linger_s
    while True:
        now = time.monotonic()
        if sent < count and now >= start + sent * interval_ms / 1000:
            sock.send(PING.pack(sent, now) + padding)
            sent += 1
            continue
        if sent >= count and (len(rtts) == count or now >= end):
            break
        next_send = start + sent * interval_ms / 1000 if sent < count else end
        readable, _, _ = select.select([sock], [], [], max(0.0, min(next_send, end) - now))
        while readable:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                break
            arrived = time.monotonic()
            seq, sent_at = PING.unpack_from(data)
            if seq not in rtts:
                rtts[seq] = (arrived - sent_at) * 1000
                print(json.dumps({"seq": seq, "sent": sent_at, "rtt_ms": round(rtts[seq], 3)}), flush=True)
    sock.close()
    return summarise(rtts, count)


def summarise(rtts: dict[int, float], count: int) -> dict[str, Any]:
    """Loss, RTT percentiles and jitter (mean |difference| of consecutive RTTs, RFC 3550 style)."""
    values = [rtts[s] for s in sorted(rtts)]
    summary: dict[str, Any] = {"sent": count, "received": len(values), "loss": 1 - len(values) / count}
    if values:
        ordered = sorted(values)
        summary.update(
            rtt_p50_ms=statistics.median(values),
            rtt_p05_ms=ordered[int(0.05 * (len(ordered) - 1))],
            rtt_p95_ms=ordered[int(0.95 * (len(ordered) - 1))],
            rtt_stdev_ms=statistics.pstdev(values),
            jitter_ms=statistics.fmean(abs(a - b) for a, b in zip(values, values[1:], strict=False))
            if len(values) > 1
            else 0.0,
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "who", "ping"):
        command = sub.add_parser(name)
        command.add_argument("--host", required=True)
        command.add_argument("--port", type=int, default=7000)
    sub.choices["who"].add_argument("--proto", choices=("udp", "tcp"), default="udp")
    sub.choices["who"].add_argument("--timeout", type=float, default=2.0)
    sub.choices["ping"].add_argument("--count", type=int, default=100)
    sub.choices["ping"].add_argument("--interval-ms", type=float, default=20.0)
    sub.choices["ping"].add_argument("--size", type=int, default=200)
    sub.choices["ping"].add_argument("--linger-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    # Measure the network, not the scheduler of a busy machine.
    try_realtime()
    if args.command == "serve":
        asyncio.run(_serve(args.host, args.port))
    elif args.command == "who":
        try:
            print(who(args.host, args.port, args.proto, args.timeout))
        except OSError as exc:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    else:
        summary = ping(args.host, args.port, args.count, args.interval_ms, args.size, args.linger_s)
        print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the parent's side: drive the probes in a Lab ---------------------------------------------


class ProbeServer:
    """``probe serve`` running in one of a lab's namespaces, for the length of a ``with`` block."""

    def __init__(self, lab: Any, role: str = "server", port: int = 7000) -> None:
        self.lab, self.role, self.port = lab, role, port
        self.host = lab.address(role)
        self.process: Any = None

    def __enter__(self) -> ProbeServer:
        import subprocess

        self.process = self.lab.popen(
            self.role,
            [
                sys.executable,
                "-m",
                "benchmarks.netlab.probe",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        if not ready or '"ready"' not in self.process.stdout.readline():
            self.lab.stop(self.process)
            raise RuntimeError(f"probe server in {self.role} did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.lab.stop(self.process)

    def who(self, role: str, proto: str = "udp", timeout: float = 1.0) -> str | None:
        """The address this server sees ``role`` come from over ``proto``; None when it gets nothing."""
        argv = [
            sys.executable,
            "-m",
            "benchmarks.netlab.probe",
            "who",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        try:
            return self.lab.run_in(role, [*argv, "--proto", proto, "--timeout", str(timeout)]).strip()
        except Exception:  # exit 1: timed out or refused, which is what a firewall test wants to see
            return None

    def ping(
        self, role: str, count: int, interval_ms: float = 20.0, size: int = 200, linger_s: float = 1.0
    ) -> Any:
        """Start a UDP ping from ``role`` to this server; returns the Popen (JSON lines on stdout)."""
        import subprocess

        argv = [
            sys.executable,
            "-m",
            "benchmarks.netlab.probe",
            "ping",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        argv += ["--count", str(count), "--interval-ms", str(interval_ms), "--size", str(size)]
        argv += ["--linger-s", str(linger_s)]
        return self.lab.popen(role, argv, stdout=subprocess.PIPE, text=True)

    def ping_summary(
        self, role: str, count: int, interval_ms: float = 20.0, size: int = 200
    ) -> dict[str, Any]:
        """Run a UDP ping from ``role`` to the end; its summary (see :func:`summarise`)."""
        process = self.ping(role, count, interval_ms, size, linger_s=0.5)
        out, _ = process.communicate(timeout=count * interval_ms / 1000 + 30)
        self.lab.stop(process)
        return json.loads(out.strip().splitlines()[-1])["summary"]
