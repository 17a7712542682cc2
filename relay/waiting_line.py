"""The line of answers waiting for a busy Ollama (every host answered 503 "server busy"),
first come first served.

With Redis (REDIS_URL) there is one line for every process (`SharedLine`), so each
answer's place is its true place; without it, or while Redis is away, each process keeps
its own. Members are answers' task channels, so the answer that becomes first can be
woken at once, in whichever process it runs (`relay.failover`).

Keys, under the prefix of `ollama_layer.shared` (whose rules for a process that dies
and a Redis that is away apply here too):

* `<prefix>:line` — the waiting answers (member: the answer's task channel), scored by a
  ticket from `<prefix>:line:ticket` (INCR): arrival order across every process.
* `<prefix>:line:expires` — the same members, scored by the time their entry expires;
  a waiting answer refreshes it each time it asks for its place.
"""

from django.conf import settings

from ollama_layer.shared import NOW, SharedRedis, for_this_loop

# KEYS: line, expires, ticket. ARGV: member, seconds to live, "1" = join only if others
# wait. Returns the member's place (1 = first), or 0 when it did not join.
_JOIN = (
    NOW
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


class SharedLine(SharedRedis):
    """One process's view of the line every process shares."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._join = self.redis.register_script(_JOIN)
        self._leave = self.redis.register_script(_LEAVE)

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


def shared() -> SharedLine | None:
    """This loop's shared line for REDIS_URL, or None without Redis."""
    return for_this_loop(SharedLine)


_local: list[str] = []  # this process's line, when it has no shared one


async def join(member: str, *, only_if_waiting: bool = False) -> int:
    """`member`'s place in line (1 = first), joining at the end if it is not in it yet.
    With `only_if_waiting` it joins only when others already wait, and 0 says nobody
    does: a new answer then goes straight to Ollama instead of passing those waiting."""
    state = shared()
    if state is not None:
        found = await state.join(member, only_if_waiting=only_if_waiting)
        if found is not None:
            return found
    if member not in _local:
        if only_if_waiting and not _local:
            return 0
        _local.append(member)
    return _local.index(member) + 1


async def leave(member: str) -> str | None:
    """Take `member` out of line. Returns the new first in line when `member` was first
    (to be woken), else None."""
    state = shared()
    first = None
    if state is not None:
        first = await state.leave(member)
    if member in _local:
        was_first = _local[0] == member
        _local.remove(member)
        if was_first and _local and first is None:
            first = _local[0]
    return first
