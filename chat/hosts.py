"""Several Ollama hosts (OLLAMA_URLS): which one answers a request.

Each answer goes to a host that has the model, preferring one where it is already loaded
(no load wait) and then the one with fewer answers in flight from this process. A host
that refuses connections is marked down and skipped for DOWN_SECONDS, then tried again.
With a single host nothing here makes a request of its own: the answer goes straight to
it, as if this module did not exist.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from chat.ollama import OllamaClient, OllamaError, OllamaUnavailable

log = logging.getLogger(__name__)

DOWN_SECONDS = 10.0  # how long a host that failed is skipped
FRESH_SECONDS = 5.0  # how long its model lists are trusted


def normalise(model: str) -> str:
    """Ollama's lookup is case-insensitive and `llama3.2` means `llama3.2:latest`."""
    name = model.lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass
class Host:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    models: set[str] = field(default_factory=set)  # installed (/api/tags)
    loaded: set[str] = field(default_factory=set)  # in memory (/api/ps)
    refreshed: float = 0.0
    error: str = ""

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, reason: str) -> None:
        if self.up:
            log.warning("Ollama host %s is down: %s", self.url, reason)
        self.down_until = time.monotonic() + DOWN_SECONDS
        self.error = reason

    async def refresh(self) -> None:
        client = OllamaClient(self.url)
        try:
            tags, running = await asyncio.gather(client.list_models(), client.running_models())
        except (OllamaUnavailable, OllamaError) as exc:
            self.mark_down(str(exc))
            return
        self.models = {normalise(m.get("name") or m.get("model", "")) for m in tags}
        self.loaded = {normalise(m.get("name") or m.get("model", "")) for m in running}
        self.refreshed = time.monotonic()
        self.down_until, self.error = 0.0, ""


class HostPool:
    def __init__(self, urls: list[str]):
        self.hosts = [Host(url.rstrip("/")) for url in urls]

    async def _refresh_stale(self, hosts: list[Host]) -> None:
        now = time.monotonic()
        stale = [h for h in hosts if now - h.refreshed > FRESH_SECONDS]
        if stale:
            await asyncio.gather(*(host.refresh() for host in stale))

    async def candidates(self, model: str) -> list[Host]:
        """Hosts to try for `model`, best first. Never empty: when no host is known to
        have the model, the least busy ones are tried so that Ollama itself says why."""
        if len(self.hosts) == 1:
            return list(self.hosts)
        await self._refresh_stale([h for h in self.hosts if h.up])
        name = normalise(model)
        up = [h for h in self.hosts if h.up] or list(self.hosts)
        having = [h for h in up if name in h.models] or up
        return sorted(having, key=lambda h: (name not in h.loaded, h.in_flight))

    async def list_models(self) -> list[dict]:
        """Every model of every reachable host, once, with the hosts that have it."""
        if len(self.hosts) == 1:
            models = await OllamaClient(self.hosts[0].url).list_models()
            return [{**m, "hosts": [self.hosts[0].url]} for m in models]
        results = await asyncio.gather(
            *(OllamaClient(h.url).list_models() for h in self.hosts), return_exceptions=True
        )
        merged: dict[str, dict] = {}
        failures = []
        for host, result in zip(self.hosts, results, strict=True):
            if isinstance(result, Exception):
                failures.append(result)
                host.mark_down(str(result))
                continue
            for model in result:
                name = model.get("name") or model.get("model", "")
                entry = merged.setdefault(name, {**model, "hosts": []})
                entry["hosts"].append(host.url)
        if len(failures) == len(self.hosts):
            raise failures[0]
        return list(merged.values())


_pools: dict[tuple[str, ...], HostPool] = {}


async def client_for(model: str) -> OllamaClient:
    """A client for the host best placed to answer about `model`."""
    return OllamaClient((await pool().candidates(model))[0].url)


def pool() -> HostPool:
    """The pool for the configured hosts (re-read each time: tests change settings)."""
    urls = tuple(settings.OLLAMA_URLS or [settings.OLLAMA_URL])
    found = _pools.get(urls)
    if found is None:
        found = _pools[urls] = HostPool(list(urls))
    return found
