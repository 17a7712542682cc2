"""What the Ollama hosts are running, pushed to every staff page.

One poller per process (per event loop), started when the first staff socket of the
process joins and stopped when the last one leaves: it reads /api/ps of every host every
MODELS_POLL_SECONDS and pushes a `server` frame (one per host, naming it) to the `models`
group only when something a page shows has changed. A load or unload pushes at once
(`refresh(host)`).
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

from models_admin import frames, present, pulls, server
from models_admin.server import describe
from ollama_layer.client import OllamaError, OllamaUnavailable

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    host: server.Host
    reachable: bool
    version: str = ""
    error: str = ""
    running: list[dict] = field(default_factory=list)  # /api/ps entries as Ollama sent them

    @property
    def ok(self) -> bool:
        """Reachable and answering: its lists can be trusted."""
        return self.reachable and not self.error

    def key(self) -> tuple:
        return (
            self.host.url,
            self.reachable,
            self.version,
            self.error,
            present.fingerprint(self.running),
        )

    def digest(self) -> str:
        """The same in every process for the same state (unlike hash()), so a socket
        can drop a state it already has: several processes' pollers push each change,
        and a socket may get a state both from the group and in its snapshot."""
        return hashlib.sha256(repr(self.key()).encode()).hexdigest()[:16]


async def fetch_state(host: server.Host, version: str | None = None) -> ServerState:
    """/api/ps of `host`, and /api/version unless `version` is already known."""
    client = host.client()
    try:
        if version is None:
            running, version = await asyncio.gather(client.running_models(), client.version())
        else:
            running = await client.running_models()
    except OllamaUnavailable as exc:
        return ServerState(host, reachable=False, error=describe(exc))
    except OllamaError as exc:
        return ServerState(host, reachable=True, error=describe(exc))
    return ServerState(host, reachable=True, version=version, running=running)


def context(state: ServerState) -> dict:
    """What `_status.html`, `_running.html` and `_host_state.html` need."""
    return {
        "server": state,
        "host": state.host,
        "several_hosts": server.several(),
        "ollama_url": state.host.url,
        "running": present.running_models(state.running, timezone.now()),
    }


def server_frame(state: ServerState) -> dict:
    # Rendered here once per change, with the same partials as the page, so the markup
    # has one source; expiry is sent as seconds left, so no clocks need to agree. A page
    # uses the lists only when `host` is the host it shows; the hosts table of every
    # page takes the state of each host.
    data = context(state)
    return {
        "type": "server",
        "host": state.host.url,
        "url": state.host.url,
        "reachable": state.reachable,
        "version": state.version,
        "error": state.error,
        "running": [
            {"name": row["name"], "expires_in": row["expires_in"]} for row in data["running"]
        ],
        "status_html": render_to_string("models_admin/_status.html", data),
        "running_html": render_to_string("models_admin/_running.html", data),
        "host_state_html": render_to_string("models_admin/_host_state.html", data),
    }


class Poller:
    """Reads /api/ps of every host, each on its own clock (a host that takes long to
    answer delays no other), and pushes a host's state when it changed."""

    def __init__(self) -> None:
        self.members: set[str] = set()  # channel names of this process's staff sockets
        # The last state pushed per host URL, while anyone listens.
        self.states: dict[str, ServerState] = {}
        # One /api/ps per host at a time: an old reply never wins.
        self.locks: dict[str, asyncio.Lock] = {}
        self.task: asyncio.Task | None = None

    async def refresh_host(self, host: server.Host, force: bool = False) -> ServerState:
        lock = self.locks.setdefault(host.url, asyncio.Lock())
        async with lock:
            previous = self.states.get(host.url)
            known = previous.version if previous is not None and previous.reachable else None
            state = await fetch_state(host, known)
            # Kept only while a socket of this process listens: otherwise it would go
            # stale, and the next change would look like no change.
            if self.members:
                self.states[host.url] = state
            else:
                self.states.pop(host.url, None)
            if force or previous is None or state.key() != previous.key():
                event = {
                    **frames.event(server_frame(state)),
                    "state": state.digest(),
                    "host": host.url,
                }
                await get_channel_layer().group_send(frames.GROUP, event)
            return state

    async def refresh(self, force: bool = False, host: server.Host | None = None) -> list:
        targets = [host] if host is not None else server.hosts()
        return list(await asyncio.gather(*(self.refresh_host(h, force) for h in targets)))

    async def _poll(self, host: server.Host) -> None:
        while True:
            try:
                await self.refresh_host(host)
            except Exception:
                log.exception("polling the running models of %s failed", host.url)
            await asyncio.sleep(settings.MODELS_POLL_SECONDS)

    async def _sweep(self) -> None:
        # While pages are open, pulls whose process died are noticed here too.
        while True:
            await asyncio.sleep(settings.STALE_SECONDS / 2)
            try:
                await pulls.sweep()
            except Exception:
                log.exception("sweeping for interrupted pulls failed")

    async def _run(self) -> None:
        await asyncio.gather(*(self._poll(host) for host in server.hosts()), self._sweep())

    def join(self, channel: str) -> list[ServerState]:
        """Start polling if nobody did yet; the states known so far, by host order."""
        self.members.add(channel)
        if self.task is None or self.task.done():
            # Belongs to no socket (it outlives the first one): a context of its own.
            self.task = asyncio.create_task(
                self._run(), name="models-poller", context=contextvars.Context()
            )
        return sorted(self.states.values(), key=lambda state: state.host.index)

    async def leave(self, channel: str) -> None:
        self.members.discard(channel)
        if self.members or self.task is None:
            return
        task, self.task = self.task, None
        self.states.clear()
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


async def refresh(host: server.Host | None = None, force: bool = True) -> list[ServerState]:
    """Read /api/ps now (of `host`, else of every host) and push it to every staff page
    (after a load, unload, delete)."""
    return await poller().refresh(force=force, host=host)
