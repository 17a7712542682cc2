"""Which Ollama hosts the models pages manage, and their failures in words.

The hosts are the ones every surface uses (`ollama_layer.hosts.pool()`: OLLAMA_URLS,
else OLLAMA_URL), in the order configured. A request picks one by its index (`?host=1`,
or a form's `host` field); it never names a URL, so nobody can point the server at an
address of their choosing. No index means the first host, so with one host nothing
changes.

A host's `url` is its address without credentials (`ollama_layer.client.public_url`):
that is what pages, frames, pull rows, messages and logs show. Only `client()` uses the
URL as configured, which may carry `user:secret@`.
"""

import re
from dataclasses import dataclass, field

from django.http import Http404

from ollama_layer import hosts as ollama_hosts
from ollama_layer.client import OllamaClient, OllamaError, OllamaUnavailable

_INDEX = re.compile(r"\d{1,4}", re.ASCII)


@dataclass(frozen=True)
class Host:
    index: int
    url: str  # shown: no credentials
    # As configured (it may carry credentials): only for connecting, never shown.
    target: str = field(default="", repr=False, compare=False)

    @property
    def query(self) -> str:
        """The index as a query string for links (empty for the first host)."""
        return f"?host={self.index}" if self.index else ""

    @property
    def and_query(self) -> str:
        """The same, to follow other parameters (`?model=x&host=1`)."""
        return f"&host={self.index}" if self.index else ""

    @property
    def number(self) -> int:
        """1-based, for people."""
        return self.index + 1

    def client(self) -> OllamaClient:
        return OllamaClient(self.target or self.url)


def hosts() -> list[Host]:
    return [
        Host(index, host.label, host.url) for index, host in enumerate(ollama_hosts.pool().hosts)
    ]


def several() -> bool:
    return len(ollama_hosts.pool().hosts) > 1


def first() -> Host:
    return hosts()[0]


def choose(value: str | None) -> Host:
    """The host a request asks for by index; none means the first. 404 otherwise."""
    known = hosts()
    if value is None or value == "":
        return known[0]
    if not _INDEX.fullmatch(value) or int(value) >= len(known):
        raise Http404("No such Ollama host.")
    return known[int(value)]


def from_request(request) -> Host:
    """The host of a request: the form's `host` field for a POST, `?host=` otherwise."""
    source = request.POST if request.method == "POST" else request.GET
    return choose(source.get("host"))


def by_url(url: str) -> Host | None:
    """The configured host with this address (a pull's row records it, without
    credentials), if it still is one."""
    return next((host for host in hosts() if url in (host.url, host.target)), None)


def url() -> str:
    """The first host's address without credentials (OLLAMA_URL with one host)."""
    return first().url


def describe(exc: Exception) -> str:
    """Ollama's failure in words a staff member can act on, keeping Ollama's message.
    Only staff read these, so they name the host (without credentials)."""
    if isinstance(exc, OllamaUnavailable):
        return f"{exc.detailed}. Check that Ollama is running, then try again."
    if isinstance(exc, OllamaError):
        if exc.status == 503:
            return f"Ollama is busy right now; try again shortly (Ollama said: {exc.message})."
        return f"Ollama said: {exc.message}"
    return "Something went wrong on the server."
