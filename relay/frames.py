"""How the frames of an answer reach its tabs (docs/websocket.md): through the channel
layer, to the answer's group, one at a time in sequence order, each encoded once
whatever the number of sockets (`relay.live.encode`). With Redis the `start` and `delta`
frames are also appended to the answer's log in the same round trip
(relay/answer_log.py).

While Redis is away a frame is lost, never waited for: the answer goes on and is saved,
and its tabs catch up from the snapshot and the database when their sockets reconnect
(relay/redis_layer.py)."""

import asyncio
import logging

from relay import answer_log
from relay.live import encode
from relay.redis_layer import RedisPubSubChannelLayer

log = logging.getLogger(__name__)

# Redis away: a frame is given up after this long (the final state is saved regardless).
PUBLISH_TIMEOUT_SECONDS = 5.0


class FrameSender:
    """Sends the frames of one answer to `group`."""

    def __init__(self, layer, group: str):
        self.layer = layer
        self.group = group
        self.log: answer_log.Writer | None = None
        self._lock = asyncio.Lock()  # one frame at a time, in sequence order
        self._failing = False
        # The in-memory layer never waits: no timer per frame for it.
        self._redis = isinstance(layer, RedisPubSubChannelLayer)
        self._timeout = PUBLISH_TIMEOUT_SECONDS if self._redis else None

    def log_answer(self, message_uuid) -> None:
        """From now on, with Redis, log the frames of answer `message_uuid`."""
        if self._redis:
            self.log = answer_log.Writer(message_uuid)

    def base_due(self) -> bool:
        """Whether the next logged frame needs the whole text (relay/answer_log.py)."""
        return self.log is not None and self.log.base_due()

    def reconnected(self) -> None:
        """Redis was away, maybe restarted empty: log the whole text afresh."""
        if self.log is not None:
            self.log.needs_base = True

    async def send(
        self,
        frame: dict,
        logged: bool = False,
        whole: tuple[str, str] | None = None,
        last: bool = False,
    ) -> bool:
        """Send `frame`; False if it was lost (Redis away). A `logged` frame (start or
        delta) also goes into the log, with `whole`, the (content, thinking) after it,
        when `base_due()` was true; the `last` frame deletes the log."""
        message = {"type": "chat.frame", "text": encode(frame)}
        entry = self.log if (logged or last) else None
        try:
            async with self._lock, asyncio.timeout(self._timeout):
                if entry is None:
                    await self.layer.group_send(self.group, message)
                elif last:
                    await self.layer.group_send_with(self.group, message, entry.forget)
                else:
                    fields = frame if frame["type"] == "delta" else None
                    seq = frame.get("seq", 0)
                    results = await self.layer.group_send_with(
                        self.group,
                        message,
                        lambda pipeline: entry.queue(pipeline, seq, fields, whole),
                    )
                    entry.written(results)
        except Exception as exc:  # e.g. Redis restarting
            if entry is not None:
                entry.failed()
            if not self._failing:  # once per outage, not once per frame
                log.warning("could not publish to %s: %s", self.group, exc)
            self._failing = True
            return False
        if self._failing:
            log.warning("publishing to %s again", self.group)
            self._failing = False
        return True
