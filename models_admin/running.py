"""What the Ollama server is running, pushed to every staff page.

One poller per process (per event loop), started when the first staff socket of the
process joins and stopped when the last one leaves: it reads /api/ps every
MODELS_POLL_SECONDS and pushes a `server` frame to the `models` group only when
something a page shows has changed. A load or unload pushes at once (`refresh(force=True)`).
Browsers never poll; the countdown to each model's expiry runs in the page.
"""

import asyncio
import contextvars
import hashlib
import logging
import weakref
from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from chat.ollama import OllamaError, OllamaUnavailable
from models_admin import frames, present, pulls, server
from models_admin.server import describe

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    reachable: bool
    version: str = ""
    error: str = ""
    running: list[dict] = field(default_factory=list)  # /api/ps entries as Ollama sent them

    def key(self) -> tuple:
        return (self.reachable, self.version, self.error, present.fingerprint(self.running))

    def digest(self) -> str:
        """The same in every process for the same state (unlike hash()), so a socket
        can drop a state it already has: several processes' pollers push each change,
        and a socket may get a state both from the group and in its snapshot."""
        return hashlib.sha256(repr(self.key()).encode()).hexdigest()[:16]


async def fetch_state(version: str | None = None) -> ServerState:
    """/api/ps, and /api/version unless `version` is already known."""
    client = server.client()
    try:
        if version is None:
            running, version = await asyncio.gather(client.running_models(), client.version())
        else:
            running = await client.running_models()
    except OllamaUnavailable as exc:
        return ServerState(reachable=False, error=describe(exc))
    except OllamaError as exc:
        return ServerState(reachable=True, error=describe(exc))
    return ServerState(reachable=True, version=version, running=running)


def context(state: ServerState) -> dict:
    """What `_status.html` and `_running.html` need."""
    return {
        "server": state,
        "ollama_url": server.url(),
        "other_hosts": server.other_hosts(),
        "running": present.running_models(state.running, timezone.now()),
    }


def server_frame(state: ServerState) -> dict:
    # Rendered here once per change, with the same partials as the page, so the markup
    # has one source; expiry is sent as seconds left, so no clocks need to agree.
    data = context(state)
    return {
        "type": "server",
        "reachable": state.reachable,
        "version": state.version,
        "url": server.url(),
        "error": state.error,
        "running": [
            {"name": row["name"], "expires_in": row["expires_in"]} for row in data["running"]
        ],
        "status_html": render_to_string("models_admin/_status.html", data),
        "running_html": render_to_string("models_admin/_running.html", data),
    }


class Poller:
    def __init__(self) -> None:
        self.members: set[str] = set()  # channel names of this process's staff sockets
        self.state: ServerState | None = None  # last state pushed, while anyone listens
        self.lock = asyncio.Lock()  # one /api/ps at a time: an old reply never wins
        self.task: asyncio.Task | None = None

    async def refresh(self, force: bool = False) -> ServerState:
        async with self.lock:
            previous = self.state
            known = previous.version if previous is not None and previous.reachable else None
            state = await fetch_state(known)
            # Kept only while a socket of this process listens: otherwise it would go
            # stale, and the next change would look like no change.
            self.state = state if self.members else None
            if force or previous is None or state.key() != previous.key():
                event = {**frames.event(server_frame(state)), "state": state.digest()}
                await get_channel_layer().group_send(frames.GROUP, event)
            return state

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        swept = loop.time()
        while True:
            try:
                await self.refresh()
                # While pages are open, pulls whose process died are noticed here too.
                if loop.time() - swept >= settings.STALE_SECONDS / 2:
                    swept = loop.time()
                    await pulls.sweep()
            except Exception:
                log.exception("polling Ollama's running models failed")
            await asyncio.sleep(settings.MODELS_POLL_SECONDS)

    def join(self, channel: str) -> ServerState | None:
        self.members.add(channel)
        if self.task is None or self.task.done():
            # Belongs to no socket (it outlives the first one): a context of its own.
            self.task = asyncio.create_task(
                self._run(), name="models-poller", context=contextvars.Context()
            )
        return self.state

    async def leave(self, channel: str) -> None:
        self.members.discard(channel)
        if self.members or self.task is None:
            return
        task, self.task, self.state = self.task, None, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()


# One per event loop: in production one per process; in tests each test has its own.
_pollers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller]" = (
    weakref.WeakKeyDictionary()
)


def poller() -> Poller:
    loop = asyncio.get_running_loop()
    found = _pollers.get(loop)
    if found is None:
        found = _pollers[loop] = Poller()
    return found


async def refresh(force: bool = True) -> ServerState:
    """Read /api/ps now and push it to every staff page (after a load, unload, delete)."""
    return await poller().refresh(force=force)
