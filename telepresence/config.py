"""Settings: defaults, overridden by a TOML config file, overridden by TELEPRESENCE_* env vars."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from telepresence.janus_target import JanusTarget
from telepresence.turn import IceConfig

WEB_ROOT = Path(__file__).resolve().parent.parent / "web_client"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    # Where the generated token secret lives when TELEPRESENCE_SECRET is not set.
    state_dir: Path = field(default_factory=lambda: Path.home() / ".telepresence")
    secret: str | None = None
    store: str = "memory"
    # redis://HOST:PORT/DB (also rediss://, unix://): every process started with the same URL
    # and secret is one contact centre, and the store is Redis whatever ``store`` says. None
    # (or an empty TELEPRESENCE_REDIS_URL): this process alone, in memory.
    redis_url: str | None = None
    # The leader writes a snapshot at least every this many steps (also when a successor's
    # replay would cost about a second: telepresence/centre/snapshot_writer.py).
    snapshot_every_steps: int = 2000
    web_root: Path = WEB_ROOT
    # Routing.
    offer_timeout_s: float = 20.0
    affinity_window_s: float = 300.0
    decline_cooloff_s: float = 60.0
    max_missed_offers: int = 3
    service_target_s: float = 20.0
    default_handle_time_s: float = 180.0
    wrap_up_s: float = 15.0
    # The skills and languages this centre serves, comma-separated. Empty (the default): a
    # customer may name any, and a queue nobody configured exists only while someone waits
    # in it. Set: a customer naming one that is neither here nor in a logged-in agent's
    # token is refused (error unknown_queue).
    skills: str = ""
    languages: str = ""
    # A dropped customer tab keeps its place (or call) this long.
    rejoin_grace_s: float = 60.0
    # A dropped agent tab keeps its calls this long (a reload); its customers are told.
    agent_grace_s: float = 15.0
    # A call's media that fails (ICE or DTLS: a browser that changed networks, Wi-Fi to mobile)
    # waits this long for that browser to offer again before the call ends (media_failed).
    media_reconnect_s: float = 15.0
    # Per-socket flood control: a token bucket, then close 1008.
    rate_per_s: float = 20.0
    rate_burst: int = 40
    max_message_bytes: int = 64 * 1024
    # A socket whose outbox backs up this far is too slow to keep (close 1013).
    outbox_limit: int = 256
    shutdown_timeout_s: float = 5.0
    # Media: the composite every customer receives.
    video_size: str = "720p"
    video_fps: float = 30.0
    # What the server prefers when the browser offers both: H.264 with the x264 preset fix
    # encodes a 720p composite in ~1 ms against VP8's ~2.6 ms (benchmarks/README.md).
    video_codec: str = "H264"
    # STUN/TURN for the server's peers, comma-separated URLs (none: host candidates, fine on a LAN).
    ice_servers: str = ""
    # TURN (coturn with use-auth-secret), comma-separated turn:/turns: URLs, e.g.
    # "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349". Each socket (and
    # each room's own peers) gets credentials of its own, minted from turn_secret (coturn's
    # static-auth-secret; env TELEPRESENCE_TURN_SECRET, never logged), valid turn_ttl_s.
    turn_urls: str = ""
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl_s: float = 86400.0
    # "relay": browsers and the server's peers use TURN relays only (strict networks, tests).
    ice_transport_policy: str = "all"
    # The server's own addresses its peers offer (comma-separated IPs; empty: every interface,
    # docker bridges and VPNs too, each one more pair for every browser to check), and how
    # long they wait for STUN/TURN servers before answering (aioice waits 5 s for a dead one).
    ice_addresses: str = ""
    ice_gather_timeout_s: float = 2.0
    receipt_interval_s: float = 2.0
    # A shipped avatar look ("aurora", "harbor") that greets waiting customers who turn their
    # media on, reading them their place and expected wait; "" for none. Each greeter renders
    # and encodes its own stream, so size this to the server (~10 % of a core each at 720p).
    greeter_look: str = ""
    # Media worker processes, each owning whole calls' media (telepresence/worker_pool.py): by
    # default one per core, so Python's packet and frame work uses every core. 0: calls' media
    # runs in the control process (one core). Calls that show an avatar always run there.
    media_workers: int = field(default_factory=lambda: usable_cores())
    # The workers' niceness (-20..19): below 0 they run ahead of other work on the machine, so
    # a busy neighbour delays calls' packets less (needs CAP_SYS_NICE; without it, 0). Where the
    # kernel shares CPU by session first (autogroup), each such worker is a session of its own.
    media_worker_nice: int = -5
    # Admission control (telepresence/admission.py, docs/protocol.md "Capacity"). The machine
    # (all its cores, whatever runs there) may be kept this busy before new customers wait;
    # 100 turns admission off.
    cpu_budget_pct: float = 85.0
    # Past this, running calls shed quality: screen tile fps, then its resolution; 100: never.
    cpu_shed_pct: float = 95.0
    # What one more call costs, % of ONE core, until learnt from running calls (one 720p30
    # composed call measured ~37-40 %).
    call_cpu_pct: float = 40.0
    # Standard media doors (docs/protocol.md "WHIP and WHEP"): POST /whip/studio, /whip/agent,
    # /whep/host. /whep/host is open to anyone unless this is true; then it takes a viewer or
    # operator token (`telepresence token NAME --role viewer`).
    whep_viewer_token_required: bool = False
    # Sessions open at once: per token (429 past it) and in all (503), so no client can grow
    # the server's peers without bound.
    media_door_sessions_per_token: int = 4
    media_door_sessions_max: int = 100
    # Of those, how many may be open without a token (an open /whep/host): anonymous viewers,
    # who have no per-token cap, cannot take every place and shut out agents' and the studio's
    # encoders (503 past it).
    media_door_anonymous_max: int = 50
    # A session whose peer sent nothing (media, RTCP, consent checks) for this long has
    # vanished without DELETE (a killed encoder): it is ended and its effects undone.
    media_door_idle_s: float = 10.0
    # "HOST:VIDEO_PORT:AUDIO_PORT": while the avatar host is live, its program (the WHEP
    # viewers' single encode) and voice go there as plain RTP, into a Janus Streaming-plugin
    # mountpoint that carries the viewers (README "Fan-out through Janus"). None: no push.
    host_janus_rtp: str | None = None

    @classmethod
    def load(
        cls, config_file: Path | None = None, env: dict[str, str] | None = None, **overrides: object
    ) -> Settings:
        """Defaults < config file < ``TELEPRESENCE_<FIELD>`` env vars < explicit overrides."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if config_file is not None:
            with open(config_file, "rb") as file:
                values.update(tomllib.load(file))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            raw = env.get(f"TELEPRESENCE_{name.upper()}")
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls()
        for name, value in values.items():
            setattr(settings, name, _coerce(name, fields[name].type, value))
        for name in ("skills", "languages"):
            bad = [label for label in labels(getattr(settings, name)) if not _LABEL.fullmatch(label)]
            if bad:
                raise ValueError(f"setting {name}: {bad[0]!r} is not a label (letters, digits, _ . -)")
        if settings.media_workers < 0:
            raise ValueError(f"setting media_workers: {settings.media_workers} is below 0")
        if not -20 <= settings.media_worker_nice <= 19:
            raise ValueError(f"setting media_worker_nice: {settings.media_worker_nice} is not in -20..19")
        if settings.redis_url is not None and not settings.redis_url.startswith(_REDIS_SCHEMES):
            # The value is not shown: it may hold a password.
            raise ValueError("setting redis_url: not a redis://, rediss:// or unix:// URL")
        settings.video_codec = settings.video_codec.upper()
        if settings.video_codec not in ("VP8", "H264"):
            raise ValueError(f"setting video_codec: {settings.video_codec!r} is not VP8 or H264")
        if settings.video_size not in ("360p", "540p", "720p", "1080p"):
            raise ValueError(f"setting video_size: {settings.video_size!r} is not 360p, 540p, 720p or 1080p")
        for name, top in (("cpu_budget_pct", 100.0), ("cpu_shed_pct", 100.0), ("call_cpu_pct", 1000.0)):
            value = getattr(settings, name)
            if not 0 < value <= top:  # also refuses NaN
                raise ValueError(f"setting {name}: {value!r} is not in (0, {top:g}]")
        settings.ice_transport_policy = settings.ice_transport_policy.strip().lower()
        for address in ice_addresses(settings):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"setting ice_addresses: {address!r} is not an IP address") from None
        if not 0 < settings.ice_gather_timeout_s <= 30:
            raise ValueError(
                f"setting ice_gather_timeout_s: {settings.ice_gather_timeout_s!r} is not in (0, 30]"
            )
        for name in (
            "media_door_sessions_per_token",
            "media_door_sessions_max",
            "media_door_anonymous_max",
            "snapshot_every_steps",
        ):
            if getattr(settings, name) < 1:
                raise ValueError(f"setting {name}: {getattr(settings, name)} is below 1")
        if not 2 <= settings.media_door_idle_s <= 600:  # also refuses NaN
            raise ValueError(f"setting media_door_idle_s: {settings.media_door_idle_s!r} is not in [2, 600]")
        if settings.host_janus_rtp is not None:
            try:
                JanusTarget.parse(str(settings.host_janus_rtp))
            except ValueError as exc:
                raise ValueError(f"setting host_janus_rtp: {exc}") from None
        IceConfig.from_settings(settings)  # a malformed URL, or TURN without its secret, fails here
        return settings


def ice_addresses(settings: Settings) -> tuple[str, ...]:
    """The ``ice_addresses`` setting as a tuple (empty: every interface)."""
    return tuple(part.strip() for part in settings.ice_addresses.split(",") if part.strip())


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), which a container may limit."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _boolean(value: object) -> bool:
    """true/false as TOML gives it, or as an env var spells it (1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LABEL = re.compile(r"[a-z0-9_.\-]{1,40}")


def labels(text: str) -> tuple[str, ...]:
    """A comma-separated setting as lower-cased labels: ``"Billing, tech"`` -> ``("billing", "tech")``."""
    return tuple(label.strip().lower() for label in text.split(",") if label.strip())


def _coerce(name: str, kind: object, value: object) -> object:
    kind = str(kind)
    if value == "" and kind.endswith("| None"):
        return None  # an empty env var (TELEPRESENCE_REDIS_URL=) unsets an optional setting
    try:
        if kind.startswith("bool"):
            return _boolean(value)
        if kind.startswith("float"):
            return float(value)  # type: ignore[arg-type]
        if kind.startswith("int"):
            return int(value)  # type: ignore[arg-type]
        if kind.startswith("Path"):
            return Path(str(value)).expanduser()
    except (TypeError, ValueError):
        raise ValueError(f"setting {name}: {value!r} is not a valid {kind}") from None
    return value
