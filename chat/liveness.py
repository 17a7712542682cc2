"""Which Daphne processes are alive, told through Redis (several processes only), so that
the answers of a process that died are recovered within seconds rather than after the
STALE_SECONDS their rows' heartbeat takes to age.

Each process has an id, written into the task channel of every answer it writes. Every
SWEEP_SECONDS its sweeper (chat/lifecycle.py) sets `chat:process:<id>` with a TTL of
TTL_SECONDS, adds the id to the set `chat:processes`, and looks for members whose key
has expired: those are dead. A process killed at t beat last after t - SWEEP_SECONDS, so
its key is gone by t + TTL_SECONDS and a live sweeper notices by t + TTL_SECONDS +
SWEEP_SECONDS (3.5 s), then recovers its answers and tells their tabs.

A process stalled for longer than the TTL (its event loop blocked) would be taken for
dead: its answers end `interrupted` with all their text, and it stops writing them when
its next checkpoint finds that out.

A Redis restart empties those keys: a process only judges others once its own beats have
gone through for GRACE_SECONDS in a row, time enough for every live process to beat again.
"""

import re
import time
import uuid

PROCESS = uuid.uuid4().hex[:12]  # this process
TTL_SECONDS = 3
SWEEP_SECONDS = 0.5
GRACE_SECONDS = TTL_SECONDS + 1
MEMBERS = "chat:processes"
_OWNER = re.compile(r"answer-([0-9a-f]{12})\.")

# Since when this process's beats have gone through without a failure (monotonic), or
# None: not beating (no Redis, not started, or the last beat failed).
_beating_since: float | None = None


def key(process: str) -> str:
    return f"chat:process:{process}"


def channel_prefix() -> str:
    """The prefix of the task channels of answers written by this process."""
    return f"specific.answer-{PROCESS}."


def owner(task_channel: str) -> str | None:
    """The id of the process writing the answer that listens on `task_channel`."""
    found = _OWNER.search(task_channel or "")
    return found.group(1) if found else None


def trusted() -> bool:
    """Whether missing keys can be read as dead processes now (see the module doc)."""
    since = _beating_since
    return since is not None and time.monotonic() - since >= GRACE_SECONDS


async def beat(client) -> None:
    """One beat of this process (a redis.asyncio client). Raises on Redis errors."""
    global _beating_since
    try:
        async with client.pipeline(transaction=False) as pipeline:
            pipeline.set(key(PROCESS), 1, ex=TTL_SECONDS)
            pipeline.sadd(MEMBERS, PROCESS)
            await pipeline.execute()
    except BaseException:
        _beating_since = None
        raise
    if _beating_since is None:
        _beating_since = time.monotonic()


async def dead_processes(client) -> set[str]:
    """Processes that beat once and whose key has expired (none unless `trusted()`)."""
    if not trusted():
        return set()
    members = {member.decode() for member in await client.smembers(MEMBERS)} - {PROCESS}
    if not members:
        return set()
    ordered = sorted(members)
    async with client.pipeline(transaction=False) as pipeline:
        for process in ordered:
            pipeline.exists(key(process))
        alive = await pipeline.execute()
    return {process for process, up in zip(ordered, alive, strict=True) if not up}


def dead_among(client, processes: set[str]) -> set[str]:
    """Which of `processes` are dead (a sync redis client; none unless `trusted()`)."""
    processes = processes - {PROCESS}
    if not processes or not trusted():
        return set()
    ordered = sorted(processes)
    pipeline = client.pipeline(transaction=False)
    for process in ordered:
        pipeline.exists(key(process))
    return {p for p, up in zip(ordered, pipeline.execute(), strict=True) if not up}


async def forget(client, processes: set[str]) -> None:
    """Their answers are recovered: stop looking at them."""
    if processes:
        await client.srem(MEMBERS, *processes)
