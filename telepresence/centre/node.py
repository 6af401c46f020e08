"""This process's part in a centre of many: its door, and its campaign to lead.

Started by the app's lifespan when ``redis_url`` is set. The node is named by the address
it serves (``host:port``, as /api/status shows it); each start is a new incarnation, so
messages meant for the sockets of an earlier life of the same address go nowhere.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import socket
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from telepresence.auth import TokenAuthority
from telepresence.centre import keys
from telepresence.centre.door import Door
from telepresence.centre.leader import Leader
from telepresence.centre.lease import CAMPAIGN_S, Lease, LeaseLost
from telepresence.config import Settings
from telepresence.metrics import CENTRE_FAMILIES, Metrics, select_families
from telepresence.redis_link import open_redis, redact_url
from telepresence.store import create_store

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 1.0


class CentreNode:
    """The door and, while this process holds the lease, the leader."""

    def __init__(
        self, settings: Settings, authority: TokenAuthority, metrics: Metrics, secret: bytes
    ) -> None:
        assert settings.redis_url, "a centre node needs redis_url"
        self.settings = settings
        self.url = settings.redis_url
        self._authority = authority
        self._metrics = metrics
        self._secret = secret
        # What other processes and /api/status call this one: unique in the centre (a door
        # refuses to start under a name a live process holds).
        host = socket.gethostname() if settings.host in ("0.0.0.0", "::", "") else settings.host
        self.node = f"{host}:{settings.port}"
        self.incarnation = secrets.token_hex(4)
        self.leader: Leader | None = None
        self._campaign: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._text = await open_redis(self.url, self._secret)  # refuses another centre's database
        # Bytes (snapshots are binary); a read that hangs ends after 5 s (XREAD blocks for 1 s at
        # most). A bounded pool that waits: thousands of sockets closing at once must not open
        # thousands of connections to Redis.
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=64, timeout=10, socket_timeout=5.0, socket_connect_timeout=3.0
        )
        self._redis = Redis.from_pool(pool)  # closes the pool with the client
        self.store = create_store(self.settings.store, self._text)
        self.door = Door(
            self._redis, self.settings, self._metrics, node=self.node, incarnation=self.incarnation
        )
        try:
            await self.door.start()
        except BaseException:  # a name a live process holds, Redis gone: nothing left open
            await self.door.stop()
            await self._redis.aclose()
            await self._text.aclose()
            raise
        self.lease = Lease(self._redis, self.door.me)
        self._campaign = asyncio.create_task(self._campaign_for_lead(), name="centre-campaign")
        # What start-up made (modules, the app, its routes: ~100,000 objects) lives as long as
        # the process: out of the collector's sight, a full collection walks only the centre's
        # state (0.3-2.6 s each at 10,000 waiting on the shared cores, benchmarks/README.md).
        # Collected first: garbage frozen would never be freed.
        gc.collect()
        gc.freeze()
        logger.info("node %s joined the centre at %s", self.node, redact_url(self.url))

    async def stop(self) -> None:
        if self._campaign is not None:
            self._campaign.cancel()
            await asyncio.gather(self._campaign, return_exceptions=True)
        await self.door.stop()
        await self._redis.aclose()
        await self._text.aclose()

    async def _campaign_for_lead(self) -> None:
        unreachable = False
        while True:
            try:
                if await self.lease.acquire():
                    await self._lead()
                unreachable = False
            except RedisError as exc:
                if not unreachable:
                    logger.error("Redis at %s is unreachable: %s", redact_url(self.url), exc)
                unreachable = True
            await asyncio.sleep(CAMPAIGN_S)

    async def _lead(self) -> None:
        self.leader = Leader(
            self._redis,
            self.lease,
            settings=self.settings,
            store=self.store,
            authority=self._authority,
            metrics=self._metrics,
            secret=self._secret,
        )
        try:
            await self.leader.run()
        except LeaseLost as exc:
            logger.warning("no longer leading: %s", exc)
        except asyncio.CancelledError:
            await asyncio.shield(self._release())
            raise
        except Exception:
            # Redis lost mid-step, or a bug: this term's memory may be ahead of what was
            # committed, so it is dropped; the next term starts again from the commit.
            logger.exception("the leader's term ended")
            await self._release()
        finally:
            self.leader = None

    async def _release(self) -> None:
        try:
            await self.lease.release()
        except RedisError:
            pass  # it expires by itself

    # ---------------------------------------------------------------- reports

    async def status(self) -> dict[str, Any]:
        """/api/status: the centre's figures as of the leader's last commit, this node and the leader."""
        raw, leader = await asyncio.wait_for(self._text.mget(keys.STATUS, keys.LEADER), HEALTH_TIMEOUT_S)
        report = json.loads(raw) if raw else {}
        return {**report, "node": self.node, "leader": leader.partition("#")[0] if leader else None}

    async def metrics_text(self) -> bytes:
        """/metrics: this process's own figures, and the centre's as the leader last published them."""
        own = select_families(self._metrics.render(), CENTRE_FAMILIES, keep=False)
        centre = await asyncio.wait_for(self._redis.get(keys.METRICS), HEALTH_TIMEOUT_S)
        return own + (centre or b"")

    async def health(self) -> tuple[bool, dict[str, Any]]:
        try:
            await asyncio.wait_for(self._text.ping(), HEALTH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            return False, {
                "status": "unavailable",
                "node": self.node,
                "reason": f"Redis at {redact_url(self.url)} is unreachable: {exc or type(exc).__name__}",
            }
        return True, {"status": "ok", "node": self.node, "leading": self.leader is not None}
