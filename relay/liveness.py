"""Which Daphne processes are alive, told through Redis (several processes only), so that
the answers of a process that died are recovered within seconds rather than after the
STALE_SECONDS their rows' heartbeat takes to age.

Each process has an id, written into the task channel of every answer it writes. Every
BEAT_SECONDS it sets `chat:process:<id>` with a TTL of TTL_SECONDS, adds the id to the
set `chat:processes`, and looks at the other members' keys. A key can also be missing
because Redis restarted (or was flushed) a moment ago, before its process beat again;
so a process counts as dead only once its key has been seen missing for CONFIRM_SECONDS
in a row, long enough for a live one to beat again.

Killed at t, a process beat last after t - BEAT_SECONDS; its key is gone by
t + TTL_SECONDS, seen missing within BEAT_SECONDS more and confirmed CONFIRM_SECONDS
later: its answers are recovered and their tabs told by about t + 3.75 s (measured: 3.2
to 3.6 s in tests/scale). A live process whose event loop stalls that long is taken for
dead: its answers end `interrupted` with all their text, and it stops writing them at its
next checkpoint.
"""

import asyncio
import logging
import re
import time
import uuid

from relay import redis_layer

log = logging.getLogger(__name__)

PROCESS = uuid.uuid4().hex[:12]  # this process
BEAT_SECONDS = 0.25
TTL_SECONDS = 2
CONFIRM_SECONDS = 1.25
# The keys are named "chat:" from when this lived in the chat app, and kept: processes of
# two versions side by side during a rolling restart still see each other.
MEMBERS = "chat:processes"
_OWNER = re.compile(r"answer-([0-9a-f]{12})\.")

# Other processes whose key was missing at every look since (monotonic seconds).
_missing_since: dict[str, float] = {}


def key(process: str) -> str:
    return f"chat:process:{process}"


def channel_prefix() -> str:
    """The prefix of the task channels of answers written by this process."""
    return f"specific.answer-{PROCESS}."


def owner(task_channel: str) -> str | None:
    """The id of the process writing the answer that listens on `task_channel`."""
    found = _OWNER.search(task_channel or "")
    return found.group(1) if found else None


async def beat(client) -> bool:
    """Beat once and look at the others (a redis.asyncio client); True while a process
    is confirmed dead and not yet forgotten. Raises on Redis errors (then nobody is
    judged until looks go through again)."""
    try:
        async with client.pipeline(transaction=False) as pipeline:
            pipeline.set(key(PROCESS), 1, ex=TTL_SECONDS)
            pipeline.sadd(MEMBERS, PROCESS)
            pipeline.smembers(MEMBERS)
            *_, members = await pipeline.execute()
        others = sorted({member.decode() for member in members} - {PROCESS})
        async with client.pipeline(transaction=False) as pipeline:
            for process in others:
                pipeline.exists(key(process))
            alive = await pipeline.execute() if others else []
    except BaseException:
        _missing_since.clear()  # what we saw is out of date
        raise
    now = time.monotonic()
    for process, up in zip(others, alive, strict=True):
        if up:
            _missing_since.pop(process, None)
        else:
            _missing_since.setdefault(process, now)
    for process in set(_missing_since) - set(others):
        del _missing_since[process]  # forgotten meanwhile
    return bool(dead())


def dead() -> set[str]:
    """The processes confirmed dead (safe to call from any thread)."""
    now = time.monotonic()
    return {p for p, since in list(_missing_since.items()) if now - since >= CONFIRM_SECONDS}


async def forget(client, processes: set[str]) -> None:
    """Their answers are recovered: stop looking at them."""
    if processes:
        await client.srem(MEMBERS, *processes)
        for process in processes:
            _missing_since.pop(process, None)


async def beat_forever(found: asyncio.Event) -> None:
    """Beat every BEAT_SECONDS, for as long as the process runs (a task of its own, so that
    a slow database never delays the beats); set `found` when a process is confirmed
    dead, so that its answers are recovered (e.g. chat/lifecycle.py). Never raises: while
    Redis is away nobody is judged."""
    failing = False
    while True:
        try:
            if await beat(redis_layer.async_client()):
                found.set()
            if failing:
                log.warning("Redis is back: process liveness known again")
            failing = False
        except Exception as exc:  # Redis away (or anything else): never stop beating
            if not failing:
                log.warning("process liveness unknown while Redis is away: %s", exc)
            failing = True
        await asyncio.sleep(BEAT_SECONDS)
