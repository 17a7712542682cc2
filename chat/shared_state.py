"""What several Daphne processes share through Redis (REDIS_URL) about Ollama's load: the
line of answers waiting for a busy Ollama, and the answers in flight on each host.

Both live in sorted sets whose entries carry an expiry time, so a process that dies
(SIGKILL, a lost machine) cannot leave a count or a place in line behind for long: its
entries stop being refreshed and drop out after `ENTRY_SECONDS`. Times are Redis's own
(`TIME`, inside scripts), so clocks of several machines never disagree about expiry.

Keys, under `PREFIX` (one set of keys per Redis database, as the channel layer):

* `<prefix>:line` — the waiting answers (member: the answer's task channel), scored by a
  ticket from `<prefix>:line:ticket` (INCR): arrival order across every process.
* `<prefix>:line:expires` — the same members, scored by the time their entry expires;
  a waiting answer refreshes it each time it asks for its place.
* `<prefix>:inflight:<host id>` — the answers streaming from one host, scored by expiry;
  each process refreshes its own every `REFRESH_SECONDS` (one pipeline for all of them).

Every call is made once per answer start, end or retry in line, never per token. When
Redis does not answer (restarting, away) the calls return None for `RETRY_SECONDS`
without trying, and callers fall back to this process's own view.
"""

import asyncio
import hashlib
import logging
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "ollama-chat"
ENTRY_SECONDS = 15.0  # an entry not refreshed for this long belongs to a dead process
REFRESH_SECONDS = 5.0  # how often a process refreshes its in-flight entries
TIMEOUT_SECONDS = 1.0  # a Redis that takes longer is treated as away
RETRY_SECONDS = 2.0  # after a failure, how long to use the local view without asking

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: line, expires, ticket. ARGV: member, seconds to live, "1" = join only if others
# wait. Returns the member's place (1 = first), or 0 when it did not join.
_JOIN = (
    _NOW
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(dead) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if ARGV[3] == '1' and redis.call('ZCARD', KEYS[1]) == 0 then return 0 end
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""
)

# KEYS: line, expires. ARGV: member. Returns the new first in line when the member was
# first (so it can be told at once), else false.
_LEAVE = """
local first = redis.call('ZRANK', KEYS[1], ARGV[1]) == 0
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if first then return redis.call('ZRANGE', KEYS[1], 0, 0)[1] or false end
return false
"""

# KEYS: in-flight sets. ARGV: seconds to live, then one member per key. Adds or refreshes.
_REFRESH = (
    _NOW
    + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 1])
end
return #KEYS
"""
)

# KEYS: in-flight sets. Returns how many live entries each holds.
_COUNT = (
    _NOW
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


class SharedState:
    """One process's connection to the shared state (one per event loop: the Redis client
    belongs to the loop that made it, as httpx's does; Channels pitfall 9)."""

    def __init__(
        self, url: str, prefix: str | None = None, entry_seconds: float = ENTRY_SECONDS
    ) -> None:
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self.prefix = prefix or PREFIX
        self.entry_seconds = entry_seconds
        self._join = self.redis.register_script(_JOIN)
        self._leave = self.redis.register_script(_LEAVE)
        self._refresh = self.redis.register_script(_REFRESH)
        self._count = self.redis.register_script(_COUNT)
        self._mine: dict[tuple[str, str], None] = {}  # (in-flight key, member) to refresh
        self._refresher: asyncio.Task | None = None
        self._away_until = 0.0

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _call(self, script, keys: list[str], args: list) -> object | None:
        """Run a script; None when Redis is away (and for RETRY_SECONDS after)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._away_until:
            return None
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._away_until = loop.time() + RETRY_SECONDS
            log.warning("shared state in Redis unavailable, using this process's: %s", exc)
            return None

    # --- the line -----------------------------------------------------------------------

    async def join(self, member: str, *, only_if_waiting: bool = False) -> int | None:
        """`member`'s place in line (1 = first), joining at the end if it is not in it;
        refreshes its entry for `seconds` more. With `only_if_waiting` it joins only when
        others already wait (0 when nobody does). None: Redis is away."""
        seconds = max(self.entry_seconds, 3 * settings.QUEUE_RETRY_SECONDS)
        keys = [self._key("line"), self._key("line", "expires"), self._key("line", "ticket")]
        found = await self._call(self._join, keys, [member, seconds, int(only_if_waiting)])
        return None if found is None else int(found)

    async def leave(self, member: str) -> str | None:
        """Take `member` out of line; the new first in line when `member` was first."""
        keys = [self._key("line"), self._key("line", "expires")]
        found = await self._call(self._leave, keys, [member])
        return found.decode() if isinstance(found, bytes) else None

    # --- answers in flight ----------------------------------------------------------------

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
        loop = asyncio.get_running_loop()
        if loop.time() < self._away_until:
            return  # its entry expires by itself
        try:
            await self.redis.zrem(key, member)
        except (RedisError, OSError) as exc:
            self._away_until = loop.time() + RETRY_SECONDS
            log.warning("could not end an in-flight entry in Redis: %s", exc)

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
        await self.redis.aclose()


_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedState]]" = (
    weakref.WeakKeyDictionary()
)


def shared() -> SharedState | None:
    """This loop's shared state for REDIS_URL, or None without Redis (one process: its
    own counts are the whole truth). Re-reads the setting each time: tests change it."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    states = _states.setdefault(loop, {})
    state = states.get(url)
    if state is None:
        state = states[url] = SharedState(url)
    return state
