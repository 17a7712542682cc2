"""A process's life around its answers: a sweeper that notices answers whose process
died (multi-process set-ups), and a last checkpoint for running answers when Daphne is
asked to stop (SIGTERM)."""

import asyncio
import logging
import sys

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import generation, services
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
    while True:
        try:
            await sweep_once()
        except Exception as exc:  # database or Redis away for a moment: next round
            log.warning("stale answer sweep failed: %s", exc)
        await asyncio.sleep(max(1.0, settings.STALE_SECONDS / 2))


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


def install_shutdown_hook() -> None:
    """Under Daphne (Twisted), save running answers before the reactor stops."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not Daphne (tests, other servers)
    from twisted.internet import defer, reactor

    def before_shutdown():
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
