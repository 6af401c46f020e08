"""ICE servers for browsers and the server's own peers, with TURN credentials minted per connection.

Pure: no I/O, no clock of its own (the time is passed in), no randomness (the id is passed in),
so a centre's new leader that replays a step mints the same credentials (telepresence/centre).

TURN credentials follow the "TURN REST API" scheme coturn implements with
``use-auth-secret`` / ``static-auth-secret`` (draft-uberti-behave-turn-rest-00): the
username is ``EXPIRY:ID`` (EXPIRY in Unix seconds) and the password is
``base64(HMAC-SHA1(secret, username))``. coturn recomputes the password from the username
and refuses a username whose expiry has passed, so nothing is shared with it but the secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

IcePolicy = Literal["all", "relay"]
POLICIES: tuple[IcePolicy, ...] = ("all", "relay")

# What browsers (RFC 7064/7065) and aiortc both accept: a name or IPv4 address (aiortc's
# parser takes no IPv6 literal), an optional port, and for turn: an optional transport.
_URL = re.compile(
    r"(?P<scheme>[a-z]+):(?P<host>[^?:/\s]*)(?::(?P<port>[^?]*))?(?:\?transport=(?P<transport>.*))?"
)
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class IceUrl:
    """One checked STUN or TURN URL; ``str()`` gives it back as written."""

    text: str
    scheme: str  # stun, stuns, turn or turns
    host: str
    port: int
    transport: str | None  # udp or tcp for turn(s); None for stun(s)

    def __str__(self) -> str:
        return self.text


def parse_url(text: str, setting: str = "turn_urls") -> IceUrl:
    """``turn:host:3478?transport=tcp`` -> an :class:`IceUrl`. Raises ValueError naming ``setting``."""
    text = text.strip()
    match = _URL.fullmatch(text)
    where = f"setting {setting}: {text!r}"
    if match is None:
        raise ValueError(f"{where} is not a STUN/TURN URL (like turn:turn.example.com:3478?transport=udp)")
    scheme, host, port_text, transport = match.group("scheme", "host", "port", "transport")
    if scheme not in ("stun", "stuns", "turn", "turns"):
        raise ValueError(f"{where}: the scheme must be turn, turns, stun or stuns, not {scheme!r}")
    if not host or not _HOST.fullmatch(host):
        raise ValueError(
            f"{where}: no host name or IPv4 address after {scheme}: (IPv6 literals are not supported)"
        )
    default_port = 5349 if scheme.endswith("s") else 3478
    if port_text is None:
        port = default_port
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise ValueError(f"{where}: the port {port_text!r} is not a number in 1..65535")
    if scheme.startswith("stun"):
        if transport is not None:
            raise ValueError(f"{where}: a {scheme}: URL takes no ?transport=")
    else:
        transport = transport if transport is not None else ("tcp" if scheme == "turns" else "udp")
        if transport not in ("udp", "tcp"):
            raise ValueError(f"{where}: the transport must be udp or tcp, not {transport!r}")
        if scheme == "turns" and transport != "tcp":
            raise ValueError(f"{where}: turns: (TURN over TLS) runs over tcp only")
    return IceUrl(text, scheme, host, port, transport)


def parse_urls(text: str, setting: str = "turn_urls") -> tuple[IceUrl, ...]:
    """A comma-separated setting as checked URLs (empty entries skipped)."""
    return tuple(parse_url(part, setting) for part in text.split(",") if part.strip())


def username(expires_at: float, id: str) -> str:
    """``EXPIRY:ID``, EXPIRY the Unix time (whole seconds) after which coturn refuses it."""
    if ":" in id:
        raise ValueError(f"a TURN credential id may not contain ':' (coturn splits on it): {id!r}")
    return f"{int(expires_at)}:{id}"


def password(secret: str | bytes, user: str) -> str:
    """coturn's ``static-auth-secret`` password for ``user``: base64(HMAC-SHA1(secret, user))."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, user.encode(), hashlib.sha1).digest()).decode("ascii")


@dataclass(frozen=True)
class IceConfig:
    """The centre's ICE settings, checked; :meth:`ice_servers` mints one connection's share.

    Build it with :meth:`from_settings` (``ice_servers``, ``turn_urls``, ``turn_secret``,
    ``turn_ttl_s``, ``ice_transport_policy``); it raises ValueError with the setting's name
    for anything a browser or aiortc would refuse later.
    """

    stun: tuple[IceUrl, ...] = ()  # the ice_servers setting: no credentials
    turn: tuple[IceUrl, ...] = ()  # the turn_urls setting: credentials minted per connection
    secret: str | None = field(default=None, repr=False)  # never in a repr, a log line or a message
    ttl_s: float = 86400.0
    policy: IcePolicy = "all"

    @classmethod
    def from_settings(cls, settings: Any) -> IceConfig:
        """From a :class:`~telepresence.config.Settings` (or anything with its ICE fields).

        Cached by value: the switchboard asks on every join and login (~40 us to check afresh).
        """
        return _checked(
            str(settings.ice_servers),
            str(settings.turn_urls),
            settings.turn_secret or None,
            float(settings.turn_ttl_s),
            str(settings.ice_transport_policy),
        )

    @property
    def has_turn(self) -> bool:
        return bool(self.turn)

    def credentials(self, id: str, now: float) -> dict[str, Any] | None:
        """The TURN server entry for connection ``id`` at Unix time ``now`` (RTCIceServer shape:
        ``{"urls", "username", "credential"}``), valid until ``now + ttl_s``; None with no TURN."""
        if not self.turn or self.secret is None:
            return None
        user = username(now + self.ttl_s, id)
        return {
            "urls": [str(u) for u in self.turn],
            "username": user,
            "credential": password(self.secret, user),
        }

    def ice_servers(self, id: str, now: float, *, browser: bool = True) -> list[dict[str, Any]]:
        """Every ICE server, as RTCIceServer dicts, with TURN credentials minted for ``id``.

        TURN comes first (aiortc uses only the first TURN URL it can). ``browser``: only the
        STUN URLs of ``ice_servers`` (a turn: URL there carries no credentials, and a browser
        refuses a TURN server without them); for the server's own peers, all of them.
        """
        servers: list[dict[str, Any]] = []
        turn = self.credentials(id, now)
        if turn is not None:
            servers.append(turn)
        return servers + self.plain_servers(browser=browser)

    def plain_servers(self, *, browser: bool = True) -> list[dict[str, Any]]:
        """The ``ice_servers`` setting alone, as RTCIceServer dicts (no TURN credentials)."""
        plain = [str(u) for u in self.stun if not browser or u.scheme.startswith("stun")]
        return [{"urls": plain}] if plain else []

    def browser_fields(self, id: str, now: float) -> dict[str, Any]:
        """What ``welcome`` and ``logged_in`` carry: ``ice_servers`` and ``ice_transport_policy``."""
        return {"ice_servers": self.ice_servers(id, now), "ice_transport_policy": self.policy}


@functools.lru_cache(maxsize=8)
def _checked(ice_servers: str, turn_urls: str, secret: str | None, ttl: float, policy_text: str) -> IceConfig:
    policy = policy_text.strip().lower()
    if policy not in POLICIES:
        raise ValueError(f"setting ice_transport_policy: {policy!r} is not all or relay")
    if not (math.isfinite(ttl) and ttl >= 1):  # also refuses NaN
        raise ValueError(f"setting turn_ttl_s: {ttl!r} is not a number of seconds >= 1")
    stun = parse_urls(ice_servers, "ice_servers")
    turn = parse_urls(turn_urls, "turn_urls")
    if turn and not secret:
        raise ValueError(
            "setting turn_urls needs turn_secret (coturn's static-auth-secret; "
            "env TELEPRESENCE_TURN_SECRET) to mint credentials"
        )
    if policy == "relay" and not turn:
        raise ValueError(
            "setting ice_transport_policy: relay needs turn_urls (and turn_secret): "
            "with no TURN server there is no relay to use"
        )
    return IceConfig(stun, turn, secret, ttl, policy)  # type: ignore[arg-type]
