"""The async HTTP client of one Ollama server (see shared/ollama-api.md for the protocol).

Every call raises one of two exceptions, so callers can tell a user what went wrong:
`OllamaUnavailable` (no answer: refused, timed out, dropped mid-stream) and `OllamaError`
(Ollama answered "no", with its own message: unknown model, bad option, server busy...).
"""

import asyncio
import json
import re
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from django.conf import settings


class OllamaUnavailable(Exception):
    """Ollama could not be reached, or the connection broke before the answer ended.

    `str(exc)` never names the host, so anyone may read it and logs may print it: host
    URLs are internal addresses and may carry credentials. `host` is the host's address
    without credentials (`public_url`) and `detailed` the message naming it, both for
    staff only (shared/design.md, "Security rules").
    """

    def __init__(self, message: str, *, host: str = "", detailed: str = ""):
        super().__init__(message)
        self.host = host
        self.detailed = detailed or message


class OllamaError(Exception):
    """Ollama answered with an error. `status` is the HTTP status (None mid-stream)."""

    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- host addresses -------------------------------------------------------------------


def public_url(url: str) -> str:
    """`url` as staff may see it and logs may print it: without `user:secret@`, query
    string or fragment, where credentials and tokens hide. Scheme, host, port and path
    are kept as configured ("http://user:pw@gpu1:11434/?token=x" -> "http://gpu1:11434/")."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: strip by hand
        return re.sub(r"//[^/?#]*@", "//", url).split("?", 1)[0].split("#", 1)[0]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- the client -----------------------------------------------------------------------

# httpx clients are bound to the event loop that created them (Channels pitfall 9), so
# keep one per loop, created on first use, and let it go with its loop.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            # A short connect timeout tells a user quickly that Ollama is down; no read
            # timeout, because a big model may think for minutes before its first token.
            timeout=httpx.Timeout(
                connect=settings.OLLAMA_CONNECT_TIMEOUT, read=None, write=30.0, pool=None
            ),
            # Hundreds of answers stream at once: no cap on open connections.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        _clients[loop] = client
    return client


def _error_message(response: httpx.Response, body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    text = body.decode("utf-8", "replace").strip()
    return text or f"HTTP {response.status_code} {response.reason_phrase}"


class OllamaClient:
    """Async client for one Ollama server. Cheap to create; connections are pooled."""

    def __init__(self, base_url: str | None = None):
        url = (base_url or settings.OLLAMA_URL).rstrip("/")
        # Credentials in the URL (`http://user:secret@host:11434`, for a proxy in front of
        # Ollama) go in an Authorization header instead, so that the URL httpx logs and
        # puts in its errors carries none.
        self._auth = None
        try:
            parts = urlsplit(url)
            username, password = parts.username, parts.password
        except ValueError:  # not a URL: httpx says so at the first request
            parts = username = password = None
        if username is not None or password is not None:
            self._auth = httpx.BasicAuth(unquote(username or ""), unquote(password or ""))
            netloc = parts.netloc.rpartition("@")[2]
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self.base_url = url

    def _unavailable(self, exc: Exception) -> OllamaUnavailable:
        host = public_url(self.base_url)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            message = "The connection to Ollama was lost"
            detailed = f"The connection to Ollama at {host} was lost"
        elif isinstance(exc, httpx.TimeoutException):
            message = "Ollama did not answer in time"
            detailed = f"Ollama at {host} did not answer in time"
        else:
            message = "The Ollama server is not reachable"
            detailed = f"Ollama is not reachable at {host}"
        return OllamaUnavailable(message, host=host, detailed=detailed)

    async def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = await _client().request(
                method, self.base_url + path, json=body, auth=self._auth
            )
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        if response.status_code >= 400:
            raise OllamaError(response.status_code, _error_message(response, response.content))
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise OllamaError(response.status_code, "Ollama sent a reply that is not JSON") from exc

    async def _stream(self, path: str, body: dict) -> AsyncIterator[dict]:
        """POST and yield each NDJSON object; an `{"error": ...}` line raises OllamaError.

        Leaving the iteration early (break, cancellation) closes the HTTP connection, which
        is how Ollama is told to stop generating.
        """
        try:
            stream = _client().stream("POST", self.base_url + path, json=body, auth=self._auth)
            async with stream as response:
                if response.status_code >= 400:
                    raise OllamaError(
                        response.status_code, _error_message(response, await response.aread())
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        chunk = json.loads(line)
                    except ValueError as exc:
                        raise OllamaError(None, "Ollama sent a malformed line") from exc
                    if not isinstance(chunk, dict):
                        raise OllamaError(None, "Ollama sent a malformed line")
                    if "error" in chunk:
                        raise OllamaError(None, str(chunk["error"]))
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc

    # --- chat -------------------------------------------------------------------------

    def chat_stream(
        self,
        model: str,
        messages: list[dict],
        *,
        options: dict | None = None,
        keep_alive: str | int | None = None,
        think: bool | str | None = None,
        format: str | dict | None = None,
    ) -> AsyncIterator[dict]:
        """Stream /api/chat; yields Ollama's chunks (deltas, then the final one)."""
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if options:
            body["options"] = options
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        if think is not None:
            body["think"] = think
        if format:
            body["format"] = format
        return self._stream("/api/chat", body)

    async def chat(self, model: str, messages: list[dict], **kw: Any) -> dict:
        """One non-streamed /api/chat reply: `message.content` is the whole text.
        Keyword arguments (options, keep_alive, think, format) go into the body when set."""
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
        body.update({key: value for key, value in kw.items() if value is not None})
        return await self._request("POST", "/api/chat", body)

    # --- server and models ------------------------------------------------------------

    async def version(self) -> str:
        return (await self._request("GET", "/api/version")).get("version", "")

    async def list_models(self) -> list[dict]:
        return (await self._request("GET", "/api/tags")).get("models") or []

    async def running_models(self) -> list[dict]:
        return (await self._request("GET", "/api/ps")).get("models") or []

    async def show(self, model: str) -> dict:
        return await self._request("POST", "/api/show", {"model": model})

    # --- model management -------------------------------------------------------------

    def pull(self, model: str) -> AsyncIterator[dict]:
        """Stream /api/pull progress lines. An unknown model or a registry failure arrives
        as an `{"error": ...}` line after "pulling manifest" and raises OllamaError;
        leaving the iteration closes the connection, which is how a pull is cancelled."""
        return self._stream("/api/pull", {"model": model, "insecure": False, "stream": True})

    async def load(self, model: str, keep_alive: str | int) -> dict:
        """Load a model into memory: an empty chat. `stream: false` gets one object back
        whatever the server version (done_reason "load")."""
        body = {"model": model, "messages": [], "keep_alive": keep_alive, "stream": False}
        return await self._request("POST", "/api/chat", body)

    async def unload(self, model: str) -> dict:
        """Unload now: an empty chat with keep_alive 0 (done_reason "unload")."""
        body = {"model": model, "messages": [], "keep_alive": 0, "stream": False}
        return await self._request("POST", "/api/chat", body)

    async def delete(self, model: str) -> None:
        await self._request("DELETE", "/api/delete", {"model": model})

    async def copy(self, source: str, destination: str) -> None:
        await self._request("POST", "/api/copy", {"source": source, "destination": destination})
