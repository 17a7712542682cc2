"""A process's life around its chat answers: a sweeper that notices answers whose process
died (multi-process set-ups). (The last checkpoint of running answers when Daphne is
asked to stop is the relay's: relay/lifecycle.py.)"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import protocol, services
from chat.models import Message
from relay import live

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
    while True:
        try:
            await sweep_once()
        except Exception as exc:  # database or Redis away for a moment: next round
            log.warning("stale answer sweep failed: %s", exc)
        await asyncio.sleep(max(1.0, settings.STALE_SECONDS / 2))
