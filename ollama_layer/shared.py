"""What several Daphne processes share through Redis (REDIS_URL) about Ollama's load: the
base of the answers in flight per host (`ollama_layer.in_flight`) and of the line of
answers waiting for a busy Ollama (`relay.waiting_line`).

Both live in sorted sets whose entries carry an expiry time, so a process that dies
(SIGKILL, a lost machine) cannot leave a count or a place in line behind for long: its
entries stop being refreshed and drop out after `ENTRY_SECONDS`. Times are Redis's own
(`TIME`, inside scripts), so clocks of several machines never disagree about expiry.
Every key is under `PREFIX` (one set of keys per Redis database, as the channel layer).

Every call is made once per answer start, end or retry in line, never per token. When
Redis does not answer (restarting, away) the calls return None for `RETRY_SECONDS`
without trying, and callers fall back to this process's own view.
"""

import asyncio
import logging
import weakref
from typing import TypeVar

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "ollama-chat"
ENTRY_SECONDS = 15.0  # an entry not refreshed for this long belongs to a dead process
TIMEOUT_SECONDS = 1.0  # a Redis that takes longer is treated as away
RETRY_SECONDS = 2.0  # after a failure, how long to use the local view without asking

# The start of each Lua script: `now`, Redis's clock in seconds.
NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"


class SharedRedis:
    """One process's connection to a piece of shared state (one per event loop: the Redis
    client belongs to the loop that made it, as httpx's does; Channels pitfall 9).
    Subclasses register their Lua scripts and call them through `_call`."""

    def __init__(
        self, url: str, prefix: str | None = None, entry_seconds: float = ENTRY_SECONDS
    ) -> None:
        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self.prefix = prefix or PREFIX
        self.entry_seconds = entry_seconds
        self._away_until = 0.0

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _away(self) -> bool:
        """Whether Redis failed less than RETRY_SECONDS ago (then nothing is asked)."""
        return asyncio.get_running_loop().time() < self._away_until

    def _failed(self, what: str, exc: Exception) -> None:
        self._away_until = asyncio.get_running_loop().time() + RETRY_SECONDS
        log.warning("%s: %s", what, exc)

    async def _call(self, script, keys: list[str], args: list) -> object | None:
        """Run a script; None when Redis is away (and for RETRY_SECONDS after)."""
        if self._away():
            return None
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._failed("shared state in Redis unavailable, using this process's", exc)
            return None

    async def close(self) -> None:
        await self.redis.aclose()


State = TypeVar("State", bound=SharedRedis)

_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def for_this_loop(kind: type[State]) -> State | None:
    """This loop's `kind` of shared state for REDIS_URL, or None without Redis (one
    process: its own view is the whole truth). Re-reads the setting each time: tests
    change it."""
    url = settings.REDIS_URL
    if not url:
        return None
    states = _states.setdefault(asyncio.get_running_loop(), {})
    state = states.get((kind, url))
    if state is None:
        state = states[(kind, url)] = kind(url)
    return state
