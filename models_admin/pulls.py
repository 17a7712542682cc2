"""The server-owned task that runs one pull and relays its progress to every staff page.

It belongs to no request and no socket: reloading or closing the page leaves it
running. It listens on a channel of its own (stored on the pull's row as
`task_channel`), so cancel and snapshot requests reach it from any process. Ollama
sends a progress line per layer every ~60 ms; the task only adds them up, a publisher
sends at most one frame per PULL_FRAME_MS, and a checkpointer saves the progress at
most once per PULL_CHECKPOINT_SECONDS.
"""

import asyncio
import contextvars
import logging
from contextlib import aclosing

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from models_admin import frames, live, server, services
from models_admin.models import Pull
from models_admin.progress import JobProgress
from models_admin.server import describe
from ollama_layer.client import OllamaError, OllamaUnavailable

log = logging.getLogger(__name__)
Status = Pull.Status

# Live pulls of this process by task channel (models_admin/live.py).
_jobs = live.jobs


class PullJob:
    """One pull. `open()`, then `start()` once its row is saved (or `discard()`)."""

    def __init__(self, layer=None):
        self.layer = layer or get_channel_layer()
        self.channel = ""
        self.pull: Pull | None = None
        self.progress = JobProgress()
        self._dirty = asyncio.Event()
        self._last_frame = 0.0
        self._cancel_requested = False
        self._relay_task: asyncio.Task | None = None
        self.task: asyncio.Task | None = None

    async def open(self) -> str:
        """Get the task channel and register it before the row exists, so that stale
        pull recovery never takes this pull for a dead one."""
        self.channel = await self.layer.new_channel("pull")
        _jobs[self.channel] = self
        return self.channel

    def discard(self) -> None:
        """Another pull of the same model was already running: joined, not started."""
        _jobs.pop(self.channel, None)

    def start(self, pull: Pull) -> None:
        self.pull = pull
        # A fresh context: started from a view, the task would otherwise inherit the
        # request's asgiref executor, which is gone once the response is sent, and
        # every later database call would fail.
        self.task = asyncio.create_task(
            self._run(), name=f"pull-{pull.uuid}", context=contextvars.Context()
        )

    def payload(self) -> dict:
        pull, progress = self.pull, self.progress
        pull.detail, pull.completed, pull.total, pull.fraction = (
            progress.detail,
            progress.completed,
            progress.total,
            progress.fraction,
        )
        if pull.status != Status.RUNNING:
            return frames.pull_payload(pull)
        speed, eta = progress.rate()
        return frames.pull_payload(pull, speed=speed, eta=eta)

    # --- the task ---------------------------------------------------------------------

    async def _run(self) -> None:
        # The relay first: a cancel heard by the listener must have something to cancel.
        self._relay_task = asyncio.create_task(self._relay())
        helpers = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._frame_loop()),
            asyncio.create_task(self._checkpoint_loop()),
        ]
        status, error, shutting_down = Status.DONE, "", False
        try:
            await self._relay_task
        except asyncio.CancelledError:
            if self._cancel_requested and not asyncio.current_task().cancelling():
                status = Status.CANCELLED
            else:  # the process is shutting down
                status, error, shutting_down = Status.INTERRUPTED, services.INTERRUPTED, True
        except (OllamaError, OllamaUnavailable) as exc:
            status, error = Status.FAILED, f"Could not pull “{self.pull.model}”. {describe(exc)}"
        except Exception as exc:
            log.exception("pull %s failed", self.pull.uuid)
            status, error = Status.FAILED, f"Could not pull “{self.pull.model}”. {describe(exc)}"
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        # Shielded: even a shutdown must leave one final state behind.
        await asyncio.shield(self._finish(status, error))
        if shutting_down:
            raise asyncio.CancelledError

    async def _relay(self) -> None:
        loop = asyncio.get_running_loop()
        await self._publish()  # the new pull shows on every staff page at once
        # Rows of older versions have no host: those pulls went to the first one.
        host = server.by_url(self.pull.host) if self.pull.host else server.first()
        if host is None:
            raise OllamaUnavailable("This Ollama host is no longer configured")
        client = host.client()
        async with aclosing(client.pull(self.pull.model)) as lines:
            async for chunk in lines:
                if chunk.get("status") == "success":
                    self.progress.finish()  # only now: the bar reaches 100 % (progress.py)
                    return
                self.progress.feed(chunk, loop.time())
                self._dirty.set()
        raise OllamaUnavailable("Ollama ended the pull before finishing it")

    async def _listen(self) -> None:
        """Requests from anywhere: cancel, and a snapshot for a page that just opened."""
        while True:
            event = await self.layer.receive(self.channel)
            kind = event.get("type")
            if kind == "pull.cancel":
                self._cancel_requested = True
                self._relay_task.cancel()  # closes the HTTP stream: Ollama stops pulling
            elif kind == "pull.snapshot":
                frame = {"type": "pull", "pull": self.payload()}
                await self.layer.send(event["reply_channel"], frames.event(frame))

    async def _frame_loop(self) -> None:
        interval = settings.PULL_FRAME_MS / 1000
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            # The first line after a quiet spell goes out at once; later ones wait for
            # the window, so one frame carries whatever arrived meanwhile.
            delay = self._last_frame + interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._dirty.clear()
            self._last_frame = loop.time()
            await self._publish()

    async def _checkpoint_loop(self) -> None:
        progress = self.progress
        saved = None
        since_beat = 0.0
        beat_every = settings.STALE_SECONDS / 4
        while True:
            await asyncio.sleep(settings.PULL_CHECKPOINT_SECONDS)
            since_beat += settings.PULL_CHECKPOINT_SECONDS
            state = (progress.detail, progress.completed, progress.total, progress.fraction)
            if state != saved or since_beat >= beat_every:
                await database_sync_to_async(services.checkpoint_pull)(self.pull.id, *state)
                saved, since_beat = state, 0.0

    async def _finish(self, status: str, error: str) -> None:
        pull, progress = self.pull, self.progress
        try:
            await database_sync_to_async(services.finish_pull)(
                pull.id,
                status,
                progress.detail,
                progress.completed,
                progress.total,
                error,
                fraction=progress.fraction,
            )
            pull.status, pull.error, pull.finished = status, error, timezone.now()
            await self._publish()
            if status == Status.DONE:
                # The host's local models changed: the pages showing it refresh the list.
                await self.layer.group_send(
                    frames.GROUP, frames.local_event(pull.host or server.url())
                )
        except Exception:
            log.exception("could not record the end of pull %s", pull.uuid)
        finally:
            _jobs.pop(self.channel, None)

    async def _publish(self) -> None:
        frame = {"type": "pull", "pull": self.payload()}
        await self.layer.group_send(frames.GROUP, frames.event(frame))


# --- used by views and consumers ------------------------------------------------------


async def start_or_join(user, name: str, host: server.Host) -> tuple[Pull, bool]:
    """Start pulling `name` (already validated) to `host`, or join the pull of it to that
    host that is running."""
    job = PullJob()
    await job.open()
    try:
        pull, created = await database_sync_to_async(services.start_pull)(
            user, name, job.channel, host.url
        )
    except BaseException:
        job.discard()
        raise
    if created:
        job.start(pull)
    else:
        job.discard()
    return pull, created


async def sweep() -> int:
    """Mark the pulls of dead processes interrupted and tell every staff page (run by the
    poller while pages are open: otherwise they would show a frozen bar until reloaded)."""
    recovered = await database_sync_to_async(services.recover_stale_pulls)()
    layer = get_channel_layer()
    for pull in recovered:
        frame = {"type": "pull", "pull": frames.pull_payload(pull)}
        await layer.group_send(frames.GROUP, frames.event(frame))
    return len(recovered)


async def shutdown(timeout: float = 5.0) -> None:
    """Stop this process's pulls as `interrupted` (the SIGTERM hook registered in
    models_admin/apps.py, run by relay/lifecycle.py). Ollama keeps what it downloaded; pulling again resumes."""
    tasks = [job.task for job in list(_jobs.values()) if job.task]
    for task in tasks:
        task.cancel()  # PullJob._run records the final state (shielded)
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def request_cancel(task_channel: str) -> None:
    await get_channel_layer().send(task_channel, {"type": "pull.cancel"})


async def request_snapshot(task_channel: str, reply_channel: str) -> None:
    await get_channel_layer().send(
        task_channel, {"type": "pull.snapshot", "reply_channel": reply_channel}
    )
