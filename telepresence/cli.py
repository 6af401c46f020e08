"""``telepresence serve``, ``telepresence token`` and ``telepresence bench``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from telepresence.auth import TOKEN_ROLES, Claims, parse_ttl
from telepresence.config import Settings


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in (text or "").split(",") if part.strip())


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return Settings.load(Path(args.config) if args.config else None, **overrides)


def serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        media_workers=args.media_workers,
        redis_url=args.redis,
    )
    tls = _tls_problem(args)
    if tls:
        print(f"error: {tls}", file=sys.stderr)
        return 2
    if settings.redis_url is not None:
        # Before the slow imports below: a wrong URL or secret is said within a second or two.
        problem = _redis_problem(settings.redis_url, settings)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2

    import uvicorn

    from telepresence.app import authority_for, create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    token = authority_for(settings).mint(
        Claims(name=args.agent_name, role="agent", expires_at=time.time() + 8 * 3600)
    )
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"{'https' if args.certfile else 'http'}://{shown_host}:{settings.port}"
    print(
        "\n  Telepresence is starting.\n"
        f"  Customer page:  {base}/\n"
        f"  Agent console ({args.agent_name}, general queue, valid 8 h):\n"
        f"      {base}/agent#token={token}\n"
        f"  Calls' media: {_workers_line(settings.media_workers)}\n",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # Bigger frames are refused by the protocol layer (close 1009) before they are buffered.
        ws_max_size=settings.max_message_bytes + 1024,
        # Per-message deflate costs ~47 KB of server memory a socket for small JSON messages.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        # Browsers allow camera and microphone only in a secure context: https, or localhost.
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    return 0


def _tls_problem(args: argparse.Namespace) -> str | None:
    """Why ``--certfile`` / ``--keyfile`` cannot serve TLS (one without the other, unreadable), or None."""
    if bool(args.certfile) != bool(args.keyfile):
        return "--certfile and --keyfile go together (a PEM certificate chain and its private key)"
    if args.certfile:
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            return f"cannot serve TLS with {args.certfile} and {args.keyfile}: {exc}"
    return None


def _redis_problem(url: str, settings: Settings) -> str | None:
    """Why this centre cannot start on the Redis at ``url`` (unreachable, another centre's), or None."""
    from telepresence.auth import load_or_create_secret
    from telepresence.redis_link import CentreMismatch, RedisUnavailable, open_redis

    # The secret tokens are signed with, wherever it comes from: the one the centre must share.
    secret = load_or_create_secret(settings.secret, settings.state_dir / "secret")

    async def check() -> None:
        client = await open_redis(url, secret)
        await client.aclose()

    try:
        asyncio.run(check())
    except (RedisUnavailable, CentreMismatch) as exc:
        return str(exc)
    return None


def _workers_line(count: int) -> str:
    if count == 0:
        return "in the server process (media_workers = 0)"
    return f"{count} worker process{'es' if count > 1 else ''}, each owning whole calls"


def token(args: argparse.Namespace) -> int:
    from telepresence.app import authority_for

    settings = _settings(args)
    try:
        ttl = parse_ttl(args.ttl)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    claims = Claims(
        name=args.name,
        role=args.role,
        skills=_split(args.skills),
        languages=_split(args.languages),
        expires_at=time.time() + ttl,
    )
    print(f"# {args.role} token for {args.name}, valid {args.ttl}", file=sys.stderr)
    print(authority_for(settings).mint(claims))
    return 0


def bench(args: argparse.Namespace) -> int:
    from benchmarks import bench as runner

    out = Path(args.out) if args.out else runner.DEFAULT_OUT
    if args.suite == "tune":
        if args.camera is not None:
            print("error: `bench tune` sweeps with a synthetic camera, not --camera", file=sys.stderr)
            return 2
        target = runner.DEFAULT_TARGET_MS if args.target_ms is None else args.target_ms
        return runner.tune(args.quick, target, out)
    if args.target_ms is not None:
        print("error: --target-ms goes with `telepresence bench tune`", file=sys.stderr)
        return 2
    return runner.bench(args.suite, args.quick, out, camera=args.camera)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telepresence", description="Talk to a person: the telepresence server."
    )
    parser.add_argument("--config", help="a TOML settings file (TELEPRESENCE_* env vars override it)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the server")
    serve_parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port (default 8080)")
    serve_parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve_parser.add_argument(
        "--media-workers",
        type=int,
        help="media worker processes, each owning whole calls (default: one per core; 0: in this process)",
    )
    serve_parser.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORT/DB: every process with this URL and secret is one contact centre",
    )
    serve_parser.add_argument("--certfile", help="serve https/wss with this PEM certificate (chain)")
    serve_parser.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    serve_parser.add_argument("--agent-name", default="agent", help="name in the printed agent link")
    # Also after the command, as the README shows it (SUPPRESS: a --config before it is kept).
    serve_parser.add_argument("--config", default=argparse.SUPPRESS, help="a TOML settings file")
    serve_parser.set_defaults(handler=serve)

    token_parser = commands.add_parser(
        "token", help="print a signed token for an agent, operator, viewer or supervisor"
    )
    token_parser.add_argument("name")
    token_parser.add_argument("--skills", help="comma-separated, e.g. billing,returns")
    token_parser.add_argument("--languages", help="comma-separated, e.g. en,fr")
    token_parser.add_argument("--role", choices=list(TOKEN_ROLES), default="agent")
    token_parser.add_argument("--ttl", default="8h", help="lifetime: 8h, 30m, 2d ... (default 8h)")
    token_parser.set_defaults(handler=token)

    # Light imports (a dict of module names, a constant): the suites load only when run.
    from benchmarks import SUITES
    from benchmarks.bench import DEFAULT_TARGET_MS

    bench_parser = commands.add_parser(
        "bench",
        help="run the benchmarks (all, or one suite), or `bench tune` the video settings",
        description="Results go to benchmarks/results/<timestamp>/: summary.json, summary.md, PNG plots.",
    )
    bench_parser.add_argument(
        "suite",
        nargs="?",
        choices=[*SUITES, "tune"],
        help="one suite (default: all, one after another); tune: sweep size, fps, codec and bitrate",
    )
    bench_parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    bench_parser.add_argument(
        "--out", metavar="DIR", help="write DIR/<timestamp>/ (default benchmarks/results/)"
    )
    bench_parser.add_argument(
        "--camera",
        metavar="SOURCE",
        help="the agent's camera (a V4L2 device or a video file) for the suites that take one",
    )
    bench_parser.add_argument(
        "--target-ms",
        type=float,
        metavar="N",
        help=f"tune only: the glass-to-glass p95 to meet (default {DEFAULT_TARGET_MS:g} ms)",
    )
    bench_parser.set_defaults(handler=bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as exc:  # bad settings: say so plainly
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
