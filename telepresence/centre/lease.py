"""The leader's lease: one key in Redis, held by one process at a time, with a time to live.

Taken with ``SET NX PX``; renewed and released only by its holder (a compare-and-set in
Lua, atomic in Redis). A holder that cannot renew in time loses it, and every commit of
the leader checks it again (see :mod:`telepresence.centre.leader`), so a paused or
partitioned old leader can never write after its successor took over.
"""

from __future__ import annotations

from redis.asyncio import Redis

from telepresence.centre import keys

LEASE_MS = 3000  # a dead leader is replaced within this, plus one campaign interval
RENEW_S = 0.75
CAMPAIGN_S = 0.5

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """Another process leads now (or Redis could not confirm that this one still does)."""


class Lease:
    """The lease as one process (``holder``: ``node#incarnation``) tries to hold it."""

    def __init__(self, redis: Redis, holder: str) -> None:
        self._redis = redis
        self.holder = holder
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self._redis.set(keys.LEADER, self.holder, nx=True, px=LEASE_MS))

    async def renew(self) -> bool:
        """False once another process holds it (or nobody does)."""
        return bool(await self._renew(keys=[keys.LEADER], args=[self.holder, LEASE_MS]))

    async def release(self) -> None:
        await self._release(keys=[keys.LEADER], args=[self.holder])
