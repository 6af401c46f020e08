"""Opening the Redis that makes several processes one contact centre, and refusing the wrong one.

:func:`open_redis` connects, proves Redis answers, and checks the database's centre
fingerprint: an HMAC-SHA256 of a fixed label under ``TELEPRESENCE_SECRET``, written once with
``SET NX``. Processes with the same secret share the database; a process with another secret
(tokens the others would reject) is refused before it can mix two centres' queues. The
fingerprint proves the secret without storing it.

Persistence we recommend in ``redis.conf`` (the tests run Redis this way)::

    appendonly yes
    appendfsync everysec

With these, every write Redis acknowledged is in its append-only file: a crash or ``kill -9``
of the Redis process loses nothing acknowledged, and a restart reloads the whole centre
(queues, tickets, chat, history). A crash of the machine itself (power, kernel) may lose
the last second or two of writes, those not yet fsynced. ``appendfsync always`` closes that
window at a cost on every write; RDB snapshots alone (``save``) lose everything since the
last snapshot and are not enough.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

# Changing the label makes every existing database look like another centre's: keep it.
_FINGERPRINT_LABEL = b"telepresence contact centre v1"


class RedisUnavailable(Exception):
    """Redis did not answer (or the URL is not one): the centre cannot start on it."""


class CentreMismatch(Exception):
    """The Redis database belongs to a contact centre with another secret."""


async def open_redis(url: str, secret: str | bytes, *, timeout_s: float = 3.0, prefix: str = "tp:") -> Redis:
    """A client for ``url`` (``decode_responses=True``: str in, str out), checked and claimed.

    Raises :class:`RedisUnavailable` if Redis does not answer a PING within ``timeout_s``,
    :class:`CentreMismatch` if ``{prefix}centre`` holds another secret's fingerprint. The
    caller owns the client (``await client.aclose()``). Messages never show a password.
    """
    shown = redact_url(url)
    try:
        # No socket_timeout: it would also cut blocking reads (XREAD BLOCK) short.
        client = Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s)
    except ValueError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {shown}: {_scrub(str(exc), url)}") from None
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
        await _claim(client, prefix + "centre", centre_fingerprint(secret), shown)
    except (CentreMismatch, RedisUnavailable):
        await client.aclose()
        raise
    except TimeoutError:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at {shown}: no answer within {timeout_s:g} s") from None
    except Exception as exc:  # redis-py's ConnectionError, AuthenticationError, ResponseError ...
        await client.aclose()
        reason = _scrub(str(exc), url) or type(exc).__name__
        raise RedisUnavailable(f"cannot reach Redis at {shown}: {reason}") from None
    return client


def centre_fingerprint(secret: str | bytes) -> str:
    """What ``{prefix}centre`` holds for this secret: its HMAC of a fixed label, never the secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # unparsable (e.g. a bad port): show nothing that might be a secret
        return "<unparsable Redis URL>"


async def _claim(client: Redis, key: str, fingerprint: str, shown_url: str) -> None:
    # SET NX, then GET: the first process of a centre claims the database, the others compare.
    for _ in range(3):  # a key deleted between the two is claimed again
        if await client.set(key, fingerprint, nx=True):
            return
        found = await client.get(key)
        if found is None:
            continue
        if hmac.compare_digest(str(found), fingerprint):
            return
        raise CentreMismatch(
            f"the Redis database at {shown_url} belongs to another contact centre (a different "
            "TELEPRESENCE_SECRET); use another DB or the same secret"
        )
    raise RedisUnavailable(f"cannot claim {key} at {shown_url}: it keeps disappearing")


def _scrub(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
