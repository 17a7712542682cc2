"""The answers in flight on each Ollama host, counted in every process when they share
Redis (REDIS_URL), so that host routing (`ollama_layer.hosts`) sends a new answer where
the fewest stream, whichever process started them (the base and its rules for a process
that dies or a Redis that is away: `ollama_layer.shared`).

Keys, under the prefix: `<prefix>:inflight:<host id>` — the answers streaming from one
host (member: the answer's task channel), scored by the time their entry expires; each
process refreshes its own every `REFRESH_SECONDS` (one pipeline for all of them).
"""

import asyncio
import hashlib
import logging

from redis.exceptions import RedisError

from ollama_layer.shared import NOW, SharedRedis, for_this_loop

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # how often a process refreshes its in-flight entries

# KEYS: in-flight sets. ARGV: seconds to live, then one member per key. Adds or refreshes.
_REFRESH = (
    NOW
    + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 1])
end
return #KEYS
"""
)

# KEYS: in-flight sets. Returns how many live entries each holds.
_COUNT = (
    NOW
    + """
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  counts[i] = redis.call('ZCARD', key)
end
return counts
"""
)


def host_id(url: str) -> str:
    """A host's name in Redis keys: a digest of its configured address, the same in every
    process with the same OLLAMA_URLS, and carrying no credentials."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class SharedInFlight(SharedRedis):
    """One process's view of the answers in flight on every host."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refresh = self.redis.register_script(_REFRESH)
        self._count = self.redis.register_script(_COUNT)
        self._mine: dict[tuple[str, str], None] = {}  # (in-flight key, member) to refresh
        self._refresher: asyncio.Task | None = None

    async def in_flight(self, hosts: list[str]) -> list[int] | None:
        """How many answers stream from each host (by `host_id`) in all processes, or None
        when Redis is away."""
        found = await self._call(self._count, [self._key("inflight", h) for h in hosts], [])
        return None if found is None else [int(n) for n in found]

    async def begin(self, host: str, member: str) -> None:
        """Count `member` as streaming from `host` until `end` (or until this process
        stops refreshing it)."""
        key = self._key("inflight", host)
        self._mine[(key, member)] = None
        await self._call(self._refresh, [key], [self.entry_seconds, member])
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_mine(), name="in-flight-refresh")

    async def end(self, host: str, member: str) -> None:
        key = self._key("inflight", host)
        self._mine.pop((key, member), None)
        if self._away():
            return  # its entry expires by itself
        try:
            await self.redis.zrem(key, member)
        except (RedisError, OSError) as exc:
            self._failed("could not end an in-flight entry in Redis", exc)

    async def _refresh_mine(self) -> None:
        # Plain ZADD, not XX: after a Redis restart that lost the data, live answers
        # count again from the next round. Ends when nothing is in flight here.
        while self._mine:
            await asyncio.sleep(REFRESH_SECONDS)
            entries = list(self._mine)
            if entries:
                keys = [key for key, _ in entries]
                await self._call(
                    self._refresh, keys, [self.entry_seconds, *(m for _, m in entries)]
                )

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        await super().close()


def shared() -> SharedInFlight | None:
    """This loop's shared counts for REDIS_URL, or None without Redis (one process: its
    own counts are the whole truth)."""
    return for_this_loop(SharedInFlight)
