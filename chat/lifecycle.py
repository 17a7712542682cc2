"""A process's life around its chat answers: a sweeper that notices answers whose process
died (with several processes it also keeps this process's liveness key in Redis:
relay/liveness.py). It starts with the server (registered in chat/apps.py) or, at the
latest, when a socket connects. (The last checkpoint of running answers when Daphne is
asked to stop is the relay's: relay/lifecycle.py.)"""

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import protocol, services
from chat.models import Message
from relay import live, liveness, redis_layer

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
            protocol.group_name(conversation_uuid),
            {"type": "chat.frame", "text": live.encode(frame)},
        )
    return len(recovered)


async def _sweep_forever() -> None:
    every = max(1.0, settings.STALE_SECONDS / 2)
    if live.single_process():
        # Only answers of an earlier run can be stale, and the first sweep finds them.
        while True:
            await _sweep_safely()
            await asyncio.sleep(every)
    # Several processes: go through the rows when a process was found dead (its own task,
    # so that a slow database never delays this process's beats), and now and then for
    # heartbeats gone stale (Redis away).
    found = asyncio.Event()
    beats = asyncio.create_task(liveness.beat_forever(found), name="liveness-beats")
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


async def _sweep_safely() -> int | None:
    try:
        return await sweep_once()
    except Exception as exc:  # database or Redis away for a moment: next round
        log.warning("stale answer sweep failed: %s", exc)
        return None
