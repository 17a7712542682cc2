"""Which Ollama hosts the models pages manage, and their failures in words.

The hosts are the chat's (`chat.hosts.pool()`: OLLAMA_URLS, else OLLAMA_URL), in the
order configured. A request picks one by its index (`?host=1`, or a form's `host`
field); it never names a URL, so nobody can point the server at an address of their
choosing. No index means the first host, so with one host nothing changes.
"""

import re
from dataclasses import dataclass

from django.http import Http404

from chat import hosts as chat_hosts
from chat.ollama import OllamaClient, OllamaError, OllamaUnavailable

_INDEX = re.compile(r"\d{1,4}", re.ASCII)


@dataclass(frozen=True)
class Host:
    index: int
    url: str

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
        return OllamaClient(self.url)


def hosts() -> list[Host]:
    return [Host(index, host.url) for index, host in enumerate(chat_hosts.pool().hosts)]


def several() -> bool:
    return len(chat_hosts.pool().hosts) > 1


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
    """The configured host with this URL (a pull's row records it), if it still is one."""
    return next((host for host in hosts() if host.url == url), None)


def url() -> str:
    """The first host's URL (OLLAMA_URL with one host)."""
    return first().url


def describe(exc: Exception) -> str:
    """Ollama's failure in words a staff member can act on, keeping Ollama's message."""
    if isinstance(exc, OllamaUnavailable):
        return f"{exc}. Check that Ollama is running, then try again."
    if isinstance(exc, OllamaError):
        if exc.status == 503:
            return f"Ollama is busy right now; try again shortly (Ollama said: {exc.message})."
        return f"Ollama said: {exc.message}"
    return "Something went wrong on the server."
