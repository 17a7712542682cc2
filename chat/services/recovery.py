"""Recovering answers whose process died: each is marked `interrupted` (the user may
continue or regenerate it) with all the text its tabs were shown."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import Conversation, Message
from relay import answer_log, live, liveness, redis_layer
from relay.target import INTERRUPTED_ERROR

log = logging.getLogger(__name__)
Status = Message.Status


def recover_stale_answers(conversation: Conversation | None = None) -> list[tuple]:
    """Mark answers whose generating process is gone as `interrupted`; returns their
    (conversation uuid, message uuid) so that open tabs can be told.

    One process (in-memory channel layer): it knows every live answer is its own, so it
    recovers a restart at once; the text is the last checkpoint's (CHECKPOINT_SECONDS).

    Several processes (Redis): an answer is stale when its process is known dead
    (relay/liveness.py: seconds after a kill) or its row's heartbeat is older than
    STALE_SECONDS (a live process checkpoints every few seconds; this also covers Redis
    being away). Its text is rebuilt from its log (relay/answer_log.py): all that any tab
    was shown. Without a log (Redis lost it) the row keeps its last checkpoint.
    """
    streaming = Message.objects.filter(status=Status.STREAMING)
    if conversation is not None:
        streaming = streaming.filter(conversation=conversation)
    if live.single_process():
        stale = streaming.exclude(task_channel__in=live.live_channels())
        found = list(stale.values_list("id", "conversation__uuid", "uuid"))
        if not found:
            return []
        # Still streaming at the moment of the update: a late checkpoint cannot be undone.
        Message.objects.filter(id__in=[row[0] for row in found], status=Status.STREAMING).update(
            status=Status.INTERRUPTED, error=INTERRUPTED_ERROR, task_channel=""
        )
        return [(conversation_uuid, message_uuid) for _, conversation_uuid, message_uuid in found]
    return _recover_shared(streaming)


def _recover_shared(streaming) -> list[tuple]:
    rows = list(
        streaming.values_list("id", "conversation__uuid", "uuid", "task_channel", "heartbeat")
    )
    if not rows:
        return []
    client = redis_layer.sync_client() if settings.REDIS_URL else None
    dead = liveness.dead()  # as this process's beats last saw Redis
    cutoff = timezone.now() - timedelta(seconds=settings.STALE_SECONDS)
    stale = [
        row
        for row in rows
        if liveness.owner(row[3]) in dead or (row[4] is not None and row[4] < cutoff)
    ]
    if not stale:
        return []
    logs = {}
    if client is not None:
        try:
            logs = answer_log.read(client, [row[2] for row in stale])
        except redis_layer.LAYER_ERRORS as exc:
            log.warning("could not read the logs of interrupted answers: %s", exc)
    saved = dict(
        Message.objects.filter(id__in=[row[0] for row in stale]).values_list("id", "content")
    )
    recovered = []
    for message_id, conversation_uuid, message_uuid, _, _ in stale:
        fields = {"status": Status.INTERRUPTED, "error": INTERRUPTED_ERROR, "task_channel": ""}
        text = logs.get(message_uuid)
        # A log with a gap in it (never expected) ends where the gap is: take it only
        # when it holds more than the checkpoint.
        if text is not None and (text.whole or len(text.content) >= len(saved[message_id])):
            fields |= {"content": text.content, "thinking": text.thinking}
        # Still streaming at the moment of the update: a late checkpoint cannot be undone,
        # and of two processes recovering it at once only one tells the tabs.
        if Message.objects.filter(id=message_id, status=Status.STREAMING).update(**fields):
            recovered.append((conversation_uuid, message_uuid))
    if client is not None:
        try:
            answer_log.delete(client, [row[2] for row in stale])
        except redis_layer.LAYER_ERRORS as exc:
            log.warning("could not delete the logs of interrupted answers: %s", exc)
    return recovered
