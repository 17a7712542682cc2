"""A process's life around its answers: a sweeper that notices answers whose process
died (with several processes it also keeps this process's liveness key in Redis:
chat/liveness.py), and a last checkpoint for running answers when Daphne is asked to
stop (SIGTERM)."""

import asyncio
import contextlib
import logging
import sys

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import generation, liveness, redis_layer, services
from chat.models import Message

log = logging.getLogger(__name__)

_sweepers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def ensure_sweeper() -> None:
    """Start this process's sweeper (once per event loop). Called when a socket connects,
    so a process recovers what died before it started as soon as a browser reaches it."""
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        _sweepers[loop] = loop.create_task(_sweep_forever(), name="stale-answer-sweeper")


async def sweep_once() -> int:
    """Mark answers of dead processes `interrupted` and tell their open tabs."""
    recovered = await database_sync_to_async(services.recover_stale_answers)()
    layer = get_channel_layer()
    for conversation_uuid, message_uuid in recovered:
        frame = {
            "type": "done",
            "id": str(message_uuid),
            "status": Message.Status.INTERRUPTED,
            "error": services.INTERRUPTED_ERROR,
            "stats": {},
            "notes": [],
        }
        await layer.group_send(
            generation.group_name(conversation_uuid),
            {"type": "chat.frame", "text": generation.encode(frame)},
        )
    return len(recovered)


async def _sweep_forever() -> None:
    every = max(1.0, settings.STALE_SECONDS / 2)
    if generation.single_process():
        # Only answers of an earlier run can be stale, and the first sweep finds them.
        while True:
            await _sweep_safely()
            await asyncio.sleep(every)
    # Several processes: go through the rows when a process was found dead (its own task,
    # so that a slow database never delays this process's beats), and now and then for
    # heartbeats gone stale (Redis away).
    found = asyncio.Event()
    beats = asyncio.create_task(_beat_forever(found), name="liveness-beats")
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(found.wait(), every)
            found.clear()
            dead = liveness.dead()
            if await _sweep_safely() is None:
                await asyncio.sleep(1)  # the database is away: not four tries a second
            elif dead:
                with contextlib.suppress(Exception):  # Redis away: next round
                    await liveness.forget(redis_layer.async_client(), dead)
    finally:
        beats.cancel()


async def _beat_forever(found: asyncio.Event) -> None:
    """This process's liveness key, and a look at the others' (chat/liveness.py)."""
    failing = False
    while True:
        try:
            if await liveness.beat(redis_layer.async_client()):
                found.set()
            if failing:
                log.warning("Redis is back: process liveness known again")
            failing = False
        except Exception as exc:  # Redis away (or anything else): never stop beating
            if not failing:
                log.warning("process liveness unknown while Redis is away: %s", exc)
            failing = True
        await asyncio.sleep(liveness.BEAT_SECONDS)


async def _sweep_safely() -> int | None:
    try:
        return await sweep_once()
    except Exception as exc:  # database or Redis away for a moment: next round
        log.warning("stale answer sweep failed: %s", exc)
        return None


async def shutdown(timeout: float = 5.0) -> None:
    """Stop every answer (and model pull) of this process as `interrupted`, keeping all
    its text."""
    from models_admin import pulls

    tasks = [answer.task for answer in list(generation._running.values()) if answer.task]
    for task in tasks:
        task.cancel()  # Generation._run saves the text and the final state (shielded)
    waits = [pulls.shutdown(timeout)]
    if tasks:
        waits.append(asyncio.wait(tasks, timeout=timeout))
    await asyncio.gather(*waits)
    if tasks:
        log.info("saved %d running answer(s) before stopping", len(tasks))


def install_process_hooks() -> None:
    """Under Daphne (Twisted): start the sweeper (and, with Redis, this process's liveness
    beats) as soon as the server runs, rather than when the first socket connects; and
    save running answers before the reactor stops (SIGTERM)."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not Daphne (tests, other servers)
    from twisted.internet import defer, reactor

    def before_shutdown():
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.callLater(0, ensure_sweeper)  # runs inside the event loop, once it runs
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
