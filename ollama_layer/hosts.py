"""Several Ollama hosts (OLLAMA_URLS): which one answers a request.

Each answer goes to a host that has the model, preferring one where it is already loaded
(no load wait) and then the one with fewer answers in flight: in every process when
they share Redis (`ollama_layer.in_flight`), else in this one. A host that refuses
connections is marked down and skipped for DOWN_SECONDS, then tried again. With a
single host nothing here makes a request of its own: the answer goes straight to it,
as if this module did not exist.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from ollama_layer import in_flight
from ollama_layer.client import OllamaClient, OllamaError, OllamaUnavailable, public_url
from ollama_layer.names import normalise

log = logging.getLogger(__name__)

DOWN_SECONDS = 10.0  # how long a host that failed is skipped
FRESH_SECONDS = 5.0  # how long its model lists are trusted


@dataclass
class Host:
    # As configured: it may carry credentials, so never shown or logged (nor in repr()).
    url: str = field(repr=False)
    in_flight: int = 0  # answers streaming from it in this process
    down_until: float = 0.0
    # The last /api/tags read from it, kept while it is down: its models are not gone,
    # they are unreachable for now (see `HostPool.list_models`).
    tags: list[dict] | None = None  # None: never read
    models: set[str] = field(default_factory=set)  # installed, normalised names
    loaded: set[str] = field(default_factory=set)  # in memory (/api/ps)
    refreshed: float = 0.0
    error: str = ""

    @property
    def label(self) -> str:
        """The address without credentials, for staff and logs (`public_url`)."""
        return public_url(self.url)

    @property
    def id(self) -> str:
        """Its name in shared state (`in_flight.host_id`): no address, no credentials."""
        return in_flight.host_id(self.url)

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, reason: str) -> None:
        """Skip this host for DOWN_SECONDS. `reason` is logged: pass `str(exc)` of an
        Ollama exception, which names no host."""
        if self.up:
            log.warning("Ollama host %s is down: %s", self.label, reason)
        self.down_until = time.monotonic() + DOWN_SECONDS
        self.error = reason

    def remember(self, tags: list[dict]) -> None:
        self.tags = list(tags)
        self.models = {normalise(m.get("name") or m.get("model", "")) for m in tags}

    async def refresh(self) -> None:
        client = OllamaClient(self.url)
        try:
            tags, running = await asyncio.gather(client.list_models(), client.running_models())
        except (OllamaUnavailable, OllamaError) as exc:
            self.mark_down(str(exc))
            return
        self.remember(tags)
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
        """Hosts to try for `model`, best first. Never empty.

        The up hosts that have it, loaded first, then the least busy. When only hosts
        that are down have it, those: the model is not missing, its host is unreachable
        (or back already: a dropped stream marks a host down that may answer at once),
        so trying them is the only way to answer, and their failure reads "not
        reachable", never "not installed". When no host is known to have it, the up
        ones, so that Ollama itself says why (see `unknown_down` for the 404 then)."""
        if len(self.hosts) == 1:
            return list(self.hosts)
        await self._refresh_stale([h for h in self.hosts if h.up])
        name = normalise(model)
        up = [h for h in self.hosts if h.up]
        having = [h for h in up if name in h.models]
        if not having:
            having = [h for h in self.hosts if not h.up and name in h.models] or up
        return await self._best_first(having or list(self.hosts), name)

    async def others_with(self, model: str, besides: list[Host]) -> list[Host]:
        """The up hosts known to have `model`, other than `besides`, best first: where an
        answer that broke off on one of `besides` can go on. Empty with a single host."""
        if len(self.hosts) == 1:
            return []
        await self._refresh_stale([h for h in self.hosts if h.up and h not in besides])
        name = normalise(model)
        having = [h for h in self.hosts if h.up and name in h.models and h not in besides]
        return await self._best_first(having, name)

    async def _best_first(self, hosts: list[Host], name: str) -> list[Host]:
        """Loaded first, then the fewest answers in flight (shared when there is Redis)."""
        if len(hosts) < 2:
            return list(hosts)
        state = in_flight.shared()
        counts = await state.in_flight([h.id for h in hosts]) if state else None
        if counts is None:  # no Redis, or away: this process's counts
            counts = [h.in_flight for h in hosts]
        ranked = sorted(
            zip(hosts, counts, strict=True), key=lambda hc: (name not in hc[0].loaded, hc[1])
        )
        return [host for host, _ in ranked]

    async def begin(self, host: Host, answer: str) -> None:
        """`answer` (its task channel) streams from `host` until `end`: counted here and,
        with several hosts and Redis, in every process."""
        host.in_flight += 1
        if len(self.hosts) > 1 and (state := in_flight.shared()):
            await state.begin(host.id, answer)

    async def end(self, host: Host, answer: str) -> None:
        host.in_flight -= 1
        if len(self.hosts) > 1 and (state := in_flight.shared()):
            await state.end(host.id, answer)

    def unknown_down(self) -> list[Host]:
        """Hosts that are down and whose models were never read: any model may be there,
        so "not installed" can't be said for sure while one of them is away."""
        return [h for h in self.hosts if not h.up and h.tags is None]

    async def list_models(self) -> list[dict]:
        """Every model of every host, once: `/api/tags` entries plus `hosts` (the URLs of
        the hosts that have it, as configured: callers strip them for display) and
        `available` (False when each of those hosts is down: its models are the ones
        last read from it). Raises OllamaUnavailable/OllamaError when no host answers."""
        if len(self.hosts) == 1:
            models = await OllamaClient(self.hosts[0].url).list_models()
            return [{**m, "hosts": [self.hosts[0].url], "available": True} for m in models]
        results = await asyncio.gather(
            *(OllamaClient(h.url).list_models() for h in self.hosts), return_exceptions=True
        )
        merged: dict[str, dict] = {}
        failures = []
        for host, result in zip(self.hosts, results, strict=True):
            if isinstance(result, Exception):
                failures.append(result)
                host.mark_down(str(result))
                tags, available = host.tags or [], False
            else:
                host.remember(result)
                tags, available = result, True
            for model in tags:
                name = model.get("name") or model.get("model", "")
                entry = merged.setdefault(name, {**model, "hosts": [], "available": False})
                entry["hosts"].append(host.url)
                entry["available"] = entry["available"] or available
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
