"""The server-owned task that writes one answer, relaying Ollama's tokens to every tab.

It belongs to no socket: closing a tab leaves it running. It listens on a channel of its
own (stored on the message row as `task_channel`) so that stop and snapshot requests
reach it from any socket in any process. Per token it only appends to a buffer; a
flusher sends at most one frame per STREAM_FLUSH_MS and a checkpointer saves the text
at most once per CHECKPOINT_SECONDS, so socket and database work grow with time, not
with tokens. With Redis each frame is also appended to the answer's log in the same round
trip (chat/answer_log.py), so that no text a tab was shown is lost if this process dies.
"""

import asyncio
import logging
from contextlib import aclosing

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from chat import context_window, failures, liveness, protocol, services, titles

# Also the names other modules use as generation.<name> (they moved to answer_frames).
from chat.answer_frames import (  # noqa: F401
    FrameSender,
    encode,
    group_name,
    request_snapshot,
    request_stop,
)
from chat.answer_text import AnswerText
from chat.models import Message
from chat.ollama import OllamaClient, OllamaError, OllamaUnavailable
from chat.redis_layer import RECONNECTED
from chat.relay import Relay
from chat.thinking import Split, ThinkSplitter

log = logging.getLogger(__name__)
Status = Message.Status

FINAL_SAVE_ATTEMPTS = 5
# Redis away: the next frame is tried this much later; tabs catch up once their sockets
# reconnect.
PUBLISH_RETRY_SECONDS = 0.5
START_FAILED_ERROR = "The server could not start this answer. Try again (Regenerate)."

# Live generations of this process by task channel. Holding them here also keeps their
# tasks referenced, so asyncio cannot collect one mid-answer (Channels pitfall 2).
_running: dict[str, "Generation"] = {}

STAT_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "done_reason",
)


def live_channels() -> list[str]:
    return list(_running)


def single_process() -> bool:
    """With the in-memory layer no other process can share answers with this one."""
    return isinstance(get_channel_layer(), InMemoryChannelLayer)


class Generation(Relay):
    """One answer being written. `open()`, then `start()` once the rows are saved. Which
    host writes it, the line for a busy Ollama and failover: `chat.relay.Relay`."""

    def __init__(self, conversation_uuid, layer=None, *, staff: bool = False):
        self.layer = layer or get_channel_layer()
        # The conversation's owner is staff: errors may name the Ollama host.
        self.staff = staff
        self.group = group_name(conversation_uuid)
        self.frames = FrameSender(self.layer, self.group)
        self.channel = ""
        self.seq = 0
        self.message: Message | None = None
        self.text = AnswerText()
        self._dirty = asyncio.Event()
        self._last_flush = 0.0
        self._stop_requested = False
        self._relay_task: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        self.stats: dict = {}
        self.failovers: list[dict] = []  # moves to another host mid-answer (chat/relay.py)
        self._received = False  # any chunk from Ollama yet (then another host only continues)
        self._stream_began = False  # any chunk from the current host
        self._started = 0.0  # event-loop time of the request that began the answer
        self._window_task: asyncio.Task | None = None  # context_window.effective()
        self._taken_over = False  # another process took this answer for dead and ended it

    async def open(self) -> str:
        """Get the task channel and register it before the row exists, so that stale
        answer recovery never takes this answer for a dead one."""
        # Named after this process, so that others can tell when it died
        # (chat/liveness.py). (With the list-based Redis layer a prefix of our own would
        # have cost a blocking read of its own; the pub/sub layer in use reads every
        # channel of a process on one connection, whatever its name.)
        self.channel = await self.layer.new_channel(liveness.channel_prefix())
        _running[self.channel] = self
        # Listening from now on: a pub/sub layer only delivers to channels already
        # subscribed, and a stop may come as soon as the row exists.
        self._listener = asyncio.create_task(self._listen())
        return self.channel

    def discard(self) -> None:
        """The answer was refused before it started."""
        _running.pop(self.channel, None)
        self._listener.cancel()

    def start(
        self, message: Message, history: list[dict], request: dict, extra: dict | None = None
    ) -> None:
        """Begin writing `message`. A continued answer keeps the text it already has;
        Ollama's deltas are appended to it. `extra` goes into the `start` frame."""
        self.message = message
        self._extra = extra or {}
        self.text = AnswerText(message.content, message.thinking)
        self.frames.log_answer(message.uuid)  # with Redis: what the tabs were shown
        self.task = asyncio.create_task(self._run(history, request), name=f"answer-{message.uuid}")

    # --- state ------------------------------------------------------------------------

    def payload(self) -> dict:
        message = self.message
        return {
            "id": str(message.uuid),
            "role": "assistant",
            "model": message.model,
            "status": Status.STREAMING,
            "content": self.text.content(),
            "thinking": self.text.thinking(),
            "seq": self.seq,
        }

    # --- the task ---------------------------------------------------------------------

    async def _run(self, history: list[dict], options: dict) -> None:
        await self._publish(
            {"type": "start", "message": {**self.payload(), **self._extra}},
            logged=True,
            whole=(self.text.content(), self.text.thinking()),
        )
        helpers = [
            self._listener,
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._checkpoint_loop()),
        ]
        self._relay_task = asyncio.create_task(self._relay(history, options))
        if self._stop_requested:  # stopped before it began
            self._relay_task.cancel()
        status, error, cancelled = Status.COMPLETE, "", False
        try:
            await self._relay_task
        except asyncio.CancelledError:
            if self._taken_over and not asyncio.current_task().cancelling():
                status, error = Status.INTERRUPTED, services.INTERRUPTED_ERROR
            elif self._stop_requested and not asyncio.current_task().cancelling():
                status = Status.STOPPED
            else:  # the process is shutting down
                status, cancelled = Status.INTERRUPTED, True
                error = services.INTERRUPTED_ERROR
        except Exception as exc:
            if not isinstance(exc, (OllamaError, OllamaUnavailable)):
                log.exception("answer %s failed", self.message.uuid)
            error = failures.explain(
                exc, self.message.model, answering=self._received, staff=self.staff
            )
            status = Status.FAILED
        finally:
            if self._window_task is not None:
                helpers.append(self._window_task)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        # Shielded: even a shutdown must leave one final state behind.
        await asyncio.shield(self._finish(status, error))
        if cancelled:
            raise asyncio.CancelledError

    async def _relay_from(
        self, url: str, history: list[dict], request: dict, *, resume: bool = False
    ) -> None:
        """Stream the answer from the host at `url`. `resume`: another host broke off;
        this one continues the text so far (its timings go on too)."""
        message = self.message
        loop = asyncio.get_running_loop()
        if not resume:  # wall time counts from the request that began the answer
            self._started = loop.time()
            self.text.first_thinking = self.text.first_content = None
        self._stream_began = False
        # A continued (or resumed) answer goes on from its text: a tag there has been
        # judged. Nothing is pending here (a failover publishes it first).
        splitter = ThinkSplitter(self.text.content(), reasoned=bool(self.text.thinking()))
        stream = OllamaClient(url).chat_stream(message.model, history, **request)
        try:
            async with aclosing(stream) as chunks:
                async for chunk in chunks:
                    self._stream_began = True
                    if not self._received:
                        self._received = True
                        self._through()  # let the next one in line try
                        # Asked now, while the model is loaded with this request's context.
                        self._window_task = asyncio.create_task(
                            context_window.effective(url, message.model, request.get("options"))
                        )
                    delta = chunk.get("message") or {}
                    content, thinking = delta.get("content") or "", delta.get("thinking") or ""
                    if content or thinking:
                        self._take(splitter.feed(content, thinking), loop.time())
                    if chunk.get("done"):
                        self._take(splitter.flush(), loop.time())
                        await self._record_stats(chunk, loop.time() - self._started)
                        return
        finally:
            # Stopped or failed: what the splitter held back (a tag's start, whitespace)
            # is text too. After the end of the stream this gives nothing.
            self._take(splitter.flush(), loop.time())
        raise OllamaUnavailable("Ollama ended the answer before finishing it")

    async def _record_stats(self, chunk: dict, seconds: float) -> None:
        """Ollama's numbers from the final chunk, with ours: thinking and wall time, and
        the context window looked up since the first token."""
        self.stats = {key: chunk[key] for key in STAT_FIELDS if key in chunk}
        if self.failovers:  # the numbers above are the last host's
            self.stats["failover"] = self.failovers
        thinking_ms = self.text.thinking_ms(asyncio.get_running_loop().time())
        if thinking_ms is not None:
            self.stats["thinking_ms"] = thinking_ms
        self.stats["wall_ms"] = round(seconds * 1000)
        task, self._window_task = self._window_task, None
        window = await context_window.settle(task)
        if window:
            self.stats["context_window"] = window

    def _take(self, split: Split, now: float) -> None:
        if self.text.take(split, now):
            self._dirty.set()

    async def _listen(self) -> None:
        """Requests from sockets anywhere: stop, and a snapshot for a joining tab."""
        while True:
            event = await self.layer.receive(self.channel)
            kind = event.get("type")
            if kind == "generation.stop":
                self._stop_requested = True
                if self._relay_task:
                    self._relay_task.cancel()  # closes the HTTP stream: Ollama stops
            elif kind == "generation.wake":
                self._your_turn()
            elif kind == "generation.snapshot" and self.message is not None:
                frame = {"type": "snapshot", "message": self.payload()}
                try:
                    await self.layer.send(
                        event["reply_channel"], {"type": "chat.frame", "text": encode(frame)}
                    )
                except Exception as exc:  # Redis away: the tab asks again when it is back
                    log.warning("could not send a snapshot of %s: %s", self.channel, exc)
            elif kind == RECONNECTED["type"]:
                self.frames.reconnected()

    async def _flush_loop(self) -> None:
        interval = settings.STREAM_FLUSH_MS / 1000
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            # The first token after a quiet spell goes out at once; the ones after it
            # wait for the window, so one frame carries all that arrived meanwhile.
            delay = self._last_flush + interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last_flush = loop.time()
            # Shielded: cancelling the flusher at the end must not lose a delta whose
            # sequence number is already taken; the send lock keeps frames in order.
            if not await asyncio.shield(self._publish_pending()):
                # Redis is away: what arrives meanwhile goes out in one frame later.
                await asyncio.sleep(PUBLISH_RETRY_SECONDS)

    async def _publish_pending(self) -> bool:
        """Send what arrived since the last frame as a delta; False if it was lost."""
        self._dirty.clear()
        fields = self.text.publish()
        if fields is None:
            return True
        self.seq += 1
        # The whole text as of this frame, when the log needs it, taken now: the next frame
        # may be taken before this one has gone out.
        whole = (self.text.content(), self.text.thinking()) if self.frames.base_due() else None
        frame = {"type": "delta", "seq": self.seq, **fields}
        return await self._publish(frame, logged=True, whole=whole)

    async def _checkpoint_loop(self) -> None:
        saved = (0, 0)
        since_beat = 0.0
        beat_every = settings.STALE_SECONDS / 4
        while True:
            await asyncio.sleep(settings.CHECKPOINT_SECONDS)
            since_beat += settings.CHECKPOINT_SECONDS
            content, thinking = self.text.content(), self.text.thinking()
            if (len(content), len(thinking)) != saved or since_beat >= beat_every:
                try:
                    ours = await database_sync_to_async(services.checkpoint_answer)(
                        self.message.id, content, thinking
                    )
                except Exception as exc:  # the database is briefly away: try next time
                    log.warning("checkpoint of %s failed: %s", self.message.uuid, exc)
                    continue
                if not ours:
                    # Another process took this one for dead (stalled too long) and ended
                    # the answer with the text its tabs had: stop writing it.
                    log.warning("answer %s was ended elsewhere; stopping", self.message.uuid)
                    self._taken_over = True
                    if self._relay_task:
                        self._relay_task.cancel()
                    return
                saved, since_beat = (len(content), len(thinking)), 0.0

    async def _finish(self, status: str, error: str) -> None:
        try:
            if self._taken_over:
                return  # saved and announced by the process that recovered it
            await self._publish_pending()
            content, thinking = self.text.content(), self.text.thinking()
            await self._save_final(status, content, thinking, error)
            frame = {
                "type": "done",
                "id": str(self.message.uuid),
                "status": status,
                "error": error,
                "stats": self.stats,
                "notes": protocol.answer_notes(self.stats),
                "seq": self.seq,
            }
            await self._publish(frame, last=True)
            if status == Status.COMPLETE:
                titles.after_answer(self.message)  # in the background; never blocks
        except Exception:
            log.exception("could not record the end of answer %s", self.message.uuid)
        finally:
            _running.pop(self.channel, None)

    async def _save_final(self, status: str, content: str, thinking: str, error: str) -> None:
        # A database that is away for a moment (restart, failover) must not lose the
        # answer: try for a few seconds before giving up.
        for attempt in range(FINAL_SAVE_ATTEMPTS):
            try:
                await database_sync_to_async(services.finish_answer)(
                    self.message.id, status, content, thinking, self.stats, error
                )
                return
            except Exception as exc:
                if attempt + 1 == FINAL_SAVE_ATTEMPTS:
                    raise
                log.warning("saving answer %s failed, retrying: %s", self.message.uuid, exc)
                await asyncio.sleep(1)

    async def _publish(self, frame: dict, **logging) -> bool:
        """To every tab; False if Redis is away (chat/answer_frames.py)."""
        return await self.frames.send(frame, **logging)

    async def fail_unstarted(self, message: Message) -> None:
        """The rows of this answer were saved but it could not start: end it `failed`
        at once, saying so, rather than leave it `streaming` (its conversation busy)."""
        self.message = message
        self.discard()
        try:
            await database_sync_to_async(services.finish_answer)(
                message.id, Status.FAILED, message.content, message.thinking, {}, START_FAILED_ERROR
            )
        finally:
            frame = {
                "type": "done",
                "id": str(message.uuid),
                "status": Status.FAILED,
                "error": START_FAILED_ERROR,
                "stats": {},
                "notes": [],
                "seq": self.seq,
            }
            await self._publish(frame)
