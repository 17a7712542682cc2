"""The server-owned task that writes one answer, relaying Ollama's tokens to every tab:
the answer engine every streaming surface reuses (docs/architecture.md).

Given a stream (`relay.streams.Stream`: what to ask Ollama), a target (`relay.target.
Target`: the row the answer is written into, implemented by the surface) and a channel
group, it belongs to no socket: closing a tab leaves it running. It listens on a channel
of its own (stored on the row as its task channel) so that stop and snapshot requests
reach it from any socket in any process (`relay.live`). Per token it only appends to a
buffer; a flusher sends at most one frame per STREAM_FLUSH_MS and a checkpointer saves
the text at most once per CHECKPOINT_SECONDS, so socket and database work grow with
time, not with tokens. With Redis each frame is also appended to the answer's log in the
same round trip (`relay.frames`, `relay.answer_log`), so that no text a tab was shown is
lost if this process dies. Which host writes it, the line for a busy Ollama and
failover: `relay.failover`.
"""

import asyncio
import logging
from contextlib import aclosing

from channels.layers import get_channel_layer
from django.conf import settings

from ollama_layer import context_window, failures
from ollama_layer.client import OllamaClient, OllamaError, OllamaUnavailable
from relay import live, liveness
from relay.answer_text import AnswerText
from relay.failover import Failover
from relay.frames import FrameSender
from relay.redis_layer import RECONNECTED
from relay.streams import Stream
from relay.target import INTERRUPTED_ERROR, STAT_FIELDS, Status, Target
from relay.thinking import Split, ThinkSplitter

log = logging.getLogger(__name__)

FINAL_SAVE_ATTEMPTS = 5
# Redis away: the next frame is tried this much later; tabs catch up once their sockets
# reconnect.
PUBLISH_RETRY_SECONDS = 0.5
START_FAILED_ERROR = "The server could not start this answer. Try again (Regenerate)."


class Answer(Failover):
    """One answer being written. `open()`, then `start()` once its row is saved (or
    `discard()` when it is refused). `group`: the channel group its frames go to
    (`relay.live.group_name`); `staff`: its reader is staff, so errors may name the
    Ollama host (without credentials)."""

    def __init__(self, group: str, layer=None, *, staff: bool = False):
        self.layer = layer or get_channel_layer()
        self.staff = staff
        self.group = group
        self.frames = FrameSender(self.layer, self.group)
        self.channel = ""
        self.seq = 0
        self.target: Target | None = None
        self.stream: Stream | None = None
        self.text = AnswerText()
        self._dirty = asyncio.Event()
        self._last_flush = 0.0
        self._stop_requested = False
        self._relay_task: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        self.stats: dict = {}
        self.failovers: list[dict] = []  # moves to another host mid-answer (relay/failover.py)
        self._received = False  # any chunk from Ollama yet (then another host only continues)
        self._stream_began = False  # any chunk from the current host
        self._started = 0.0  # event-loop time of the request that began the answer
        self._window_task: asyncio.Task | None = None  # context_window.effective()
        self._taken_over = False  # another process took this answer for dead and ended it

    async def open(self) -> str:
        """Get the task channel and register it before the row exists, so that stale
        answer recovery never takes this answer for a dead one."""
        # Named after this process, so that others can tell when it died
        # (relay/liveness.py). (With the list-based Redis layer a prefix of our own would
        # have cost a blocking read of its own; the pub/sub layer in use reads every
        # channel of a process on one connection, whatever its name.)
        self.channel = await self.layer.new_channel(liveness.channel_prefix())
        live.running[self.channel] = self
        # Listening from now on: a pub/sub layer only delivers to channels already
        # subscribed, and a stop may come as soon as the row exists.
        self._listener = asyncio.create_task(self._listen())
        return self.channel

    def discard(self) -> None:
        """The answer was refused before it started."""
        live.running.pop(self.channel, None)
        self._listener.cancel()

    def start(self, target: Target, stream: Stream, extra: dict | None = None) -> None:
        """Begin writing into `target` what `stream` brings. A continued answer keeps the
        text the target already has; Ollama's deltas are appended to it. `extra` goes
        into the `start` frame's message."""
        self.target = target
        self.stream = stream
        self._extra = extra or {}
        self.text = AnswerText(target.content, target.thinking)
        self.frames.log_answer(target.id)  # with Redis: what the tabs were shown
        self.task = asyncio.create_task(self._run(), name=f"answer-{target.id}")

    # --- state ------------------------------------------------------------------------

    def payload(self) -> dict:
        """The answer as the `start` and `snapshot` frames carry it."""
        return {
            **self.target.fields(),
            "status": Status.STREAMING,
            "content": self.text.content(),
            "thinking": self.text.thinking(),
            "seq": self.seq,
        }

    # --- the task ---------------------------------------------------------------------

    async def _run(self) -> None:
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
        self._relay_task = asyncio.create_task(self._relay(self.stream))
        if self._stop_requested:  # stopped before it began
            self._relay_task.cancel()
        status, error, cancelled = Status.COMPLETE, "", False
        try:
            await self._relay_task
        except asyncio.CancelledError:
            if self._taken_over and not asyncio.current_task().cancelling():
                status, error = Status.INTERRUPTED, INTERRUPTED_ERROR
            elif self._stop_requested and not asyncio.current_task().cancelling():
                status = Status.STOPPED
            else:  # the process is shutting down
                status, cancelled = Status.INTERRUPTED, True
                error = INTERRUPTED_ERROR
        except Exception as exc:
            if not isinstance(exc, (OllamaError, OllamaUnavailable)):
                log.exception("answer %s failed", self.target.id)
            error = failures.explain(
                exc, self.target.model, answering=self._received, staff=self.staff
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

    async def _relay_from(self, url: str, stream: Stream, *, resume: bool = False) -> None:
        """Stream the answer from the host at `url`. `resume`: another host broke off;
        this one continues the text so far (its timings go on too)."""
        loop = asyncio.get_running_loop()
        if not resume:  # wall time counts from the request that began the answer
            self._started = loop.time()
            self.text.first_thinking = self.text.first_content = None
        self._stream_began = False
        # A continued (or resumed) answer goes on from its text: a tag there has been
        # judged. Nothing is pending here (a failover publishes it first).
        splitter = ThinkSplitter(self.text.content(), reasoned=bool(self.text.thinking()))
        parts = stream.parts
        try:
            async with aclosing(stream.open(OllamaClient(url))) as chunks:
                async for chunk in chunks:
                    self._stream_began = True
                    if not self._received:
                        self._received = True
                        self._through()  # let the next one in line try
                        # Asked now, while the model is loaded with this request's context.
                        self._window_task = asyncio.create_task(
                            context_window.effective(url, stream.model, stream.options)
                        )
                    content, thinking = parts(chunk)
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
            if kind == live.STOP:
                self._stop_requested = True
                if self._relay_task:
                    self._relay_task.cancel()  # closes the HTTP stream: Ollama stops
            elif kind == live.WAKE:
                self._your_turn()
            elif kind == live.SNAPSHOT and self.target is not None:
                frame = {"type": "snapshot", "message": self.payload()}
                try:
                    await self.layer.send(
                        event["reply_channel"], {"type": "chat.frame", "text": live.encode(frame)}
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
                    ours = await self.target.checkpoint(content, thinking)
                except Exception as exc:  # the database is briefly away: try next time
                    log.warning("checkpoint of %s failed: %s", self.target.id, exc)
                    continue
                if not ours:
                    # Another process took this one for dead (stalled too long) and ended
                    # the answer with the text its tabs had: stop writing it.
                    log.warning("answer %s was ended elsewhere; stopping", self.target.id)
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
                "id": self.target.id,
                "status": status,
                "error": error,
                "stats": self.stats,
                "notes": self.target.notes(self.stats),
                "seq": self.seq,
            }
            await self._publish(frame, last=True)
            self.target.finished(status)  # e.g. a title, in the background; never blocks
        except Exception:
            log.exception("could not record the end of answer %s", self.target.id)
        finally:
            live.running.pop(self.channel, None)

    async def _save_final(self, status: str, content: str, thinking: str, error: str) -> None:
        # A database that is away for a moment (restart, failover) must not lose the
        # answer: try for a few seconds before giving up.
        for attempt in range(FINAL_SAVE_ATTEMPTS):
            try:
                await self.target.finish(status, content, thinking, self.stats, error)
                return
            except Exception as exc:
                if attempt + 1 == FINAL_SAVE_ATTEMPTS:
                    raise
                log.warning("saving answer %s failed, retrying: %s", self.target.id, exc)
                await asyncio.sleep(1)

    async def _publish(self, frame: dict, **logging) -> bool:
        """To every tab; False if Redis is away (relay/frames.py)."""
        return await self.frames.send(frame, **logging)

    async def fail_unstarted(self, target: Target) -> None:
        """The row of this answer was saved but it could not start: end it `failed` at
        once, saying so, rather than leave it `streaming` (its conversation busy)."""
        self.target = target
        self.discard()
        try:
            await target.finish(
                Status.FAILED, target.content, target.thinking, {}, START_FAILED_ERROR
            )
        finally:
            frame = {
                "type": "done",
                "id": target.id,
                "status": Status.FAILED,
                "error": START_FAILED_ERROR,
                "stats": {},
                "notes": [],
                "seq": self.seq,
            }
            await self._publish(frame)
