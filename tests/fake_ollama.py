"""A fake Ollama server: real HTTP/1.1 on loopback, scriptable per test.

It follows Ollama's wire protocol as its Go server behaves (server/routes.go, api/types.go):
the same routes, NDJSON streams over chunked encoding, the same error bodies and status
codes, load/unload through empty chats, ``/api/ps`` expiry, pull progress, and the client
disconnect that cancels a generation. Standard library only, so it also runs on its own.

Using it from a test::

    with FakeOllama() as fake:                      # or FakeOllama().start() ... .stop()
        fake.push_reply(Reply(content="Hi there", delay=0.01))
        ...point the app at fake.url, run it...
        assert fake.last_chat()["messages"][-1]["content"] == "hello"

Scripting:

* ``fake.push_reply(Reply(...))`` queues the reply for the next ``/api/chat`` (or
  ``/api/generate``) request that has messages (a prompt); FIFO. ``push_reply(r, model="qwen3")``
  queues for one model only; that queue is checked first. With nothing queued,
  ``fake.default_replies[<model:tag>]`` and then ``fake.default_reply`` answer.
* ``Reply`` covers content and thinking tokens, pacing (``delay``/``rate``/``first_delay``),
  errors before the stream (``status`` + ``error``), an error line mid-stream
  (``error_after``), a connection dropped mid-stream (``drop_after``), ``done_reason``,
  the final ``prompt_eval_count`` (a full context window), a pause mid-answer until a test
  sets an event (``hold_after`` + ``resume``), tool calls, and the benchmark mode where
  each token is the time it was sent (``timestamps``).
* ``fake.busy = True`` makes chat/generate/pull answer 503 "server busy".
* ``fake.models`` (installed), ``fake.pullable`` (what ``/api/pull`` can fetch, layer
  by layer, each announced when the one before it is done, as Ollama does),
  ``fake.pull_scripts`` (the exact progress lines of one pull, e.g. an error mid-layer),
  ``fake.add_model()``/``fake.remove_model()``, ``fake.version``.
* Every request is recorded (``fake.requests``): method, path, parsed body, and whether the
  response finished or the client hung up first. ``fake.wait_for_disconnect()`` waits for the
  latter, which is how a test checks that "stop" really closed the stream to Ollama.
* ``fake.reset()`` puts everything back as it was after construction.
* ``fake.stop()`` then ``fake.start()`` brings it back on the same port ("Ollama restarted").

Details a test may rely on:

* ``drop_after`` counts every chunk (thinking and content); ``error_after`` counts content
  chunks only. ``status``/``error`` answer after ``first_delay`` (a load that failed).
* Thinking is sent unless the request says ``think: false`` (Ollama >= 0.12.4 turns thinking
  on by default); ``think: true`` or a level on a model without the ``thinking`` capability
  is a 400, as is non-empty ``tools`` on a model without ``tools``.
* Validation runs in Ollama's order: body, field types, keep_alive, think, model name, model
  lookup, unload, capabilities; then ``busy`` (the scheduler), then load or generate.
* ``/api/generate`` with no model answers 404 ``model '' not found``, as Ollama does.
* State changes (``/api/ps``, installed models, ``Recorded.finished``) happen before the last
  byte of the response is written, so a client that has the whole reply may look at once.

On its own, to try the UI without Ollama::

    python -m tests.fake_ollama --port 11434 [--host 127.0.0.1] [--rate 20]
                                [--timestamps] [--tokens 200]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import re
import secrets
import select
import socket
import socketserver
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeOllama",
    "Recorded",
    "Reply",
    "display_name",
    "parse_go_duration",
    "parse_model_name",
    "valid_model_name",
]

DEFAULT_VERSION = "0.12.6"
DEFAULT_KEEP_ALIVE = 300.0  # seconds; Ollama's OLLAMA_KEEP_ALIVE default of 5m
RUNNER_STOPPED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
BUSY = "server busy, please try again.  maximum pending requests exceeded"  # two spaces, as Go
FOREVER_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration(math.MaxInt64): "never unload"


# --------------------------------------------------------------------------------------------
# Scripted replies and recordings


@dataclass
class Reply:
    """How the next chat/generate request is answered. See the module docstring."""

    content: str | list[str] = "Hello! How can I help you today?"
    # A str is split into word tokens that keep their leading spaces; a list is sent as given.
    thinking: str | list[str] = ""  # streamed first as message.thinking deltas
    legacy_think: bool = False  # send <think>...</think>\n\n inside content (pre-0.9 servers)
    delay: float = 0.0  # seconds between chunks
    rate: float | None = None  # tokens per second; overrides delay
    first_delay: float = 0.0  # before the first chunk (a slow model load)
    status: int = 200  # != 200: fail before streaming with {"error": error}
    error: str | None = None
    error_after: int | None = None  # after this many content chunks: an error line, no done
    drop_after: int | None = None  # after this many chunks: close the socket, no terminator
    done_reason: str = "stop"
    timestamps: bool = False  # benchmark mode: each content token is " t<time.time_ns()>"
    tokens: int = 200  # how many timestamp tokens
    # Tool calls, sent in their own chunk after the content, only when the request had tools
    # (Ollama only parses tool calls then). Each item: {"name": ..., "arguments": {...}}.
    tool_calls: list[dict[str, Any]] | None = None
    # The final chunk's prompt_eval_count instead of the word count of the messages: a
    # prompt that filled the context window reports the window's size.
    prompt_eval_count: int | None = None
    # After this many chunks, wait until `resume` is set (a test's threading.Event): what
    # a test checks mid-answer is then there, however slow the machine.
    hold_after: int | None = None
    resume: threading.Event | None = None


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    body: Any  # parsed JSON, or None (no body / not JSON)
    started_at: float  # time.time()
    finished: bool = False  # the whole response was written
    disconnected: bool = False  # the client closed the connection before it finished
    status: int | None = None  # the HTTP status sent, if any
    # The Authorization header, if any (Ollama ignores it; a proxy in front may not).
    authorization: str | None = None


def _tokens(text: str | list[str]) -> list[str]:
    if isinstance(text, str):
        return re.findall(r"\s*\S+", text)
    return list(text)


# --------------------------------------------------------------------------------------------
# Ollama's rules: model names (types/model/name.go) and durations (Go time.ParseDuration)

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_MISSING = "!MISSING!"  # Go's MissingPart: an empty part after a separator; always invalid
_WORD = frozenset(string.ascii_letters + string.digits + "_")


def _cut_last(s: str, sep: str) -> tuple[str, str, bool]:
    i = s.rfind(sep)
    if i < 0:
        return s, "", False
    return s[:i] or _MISSING, s[i + len(sep) :] or _MISSING, True


def parse_model_name(name: str) -> tuple[str, str, str, str]:
    """Split ``[host/][namespace/]model[:tag]`` and fill Ollama's defaults, like ParseName."""
    s, host, namespace, tag = name, "", "", ""
    # The tag is cut at the last ":" only after the last "/", so "host:5000/ns/m" keeps its port.
    if s.rfind(":") > s.rfind("/"):
        s, tag, _ = _cut_last(s, ":")
    s, model, cut = _cut_last(s, "/")
    if not cut:
        model = s
    else:
        s, namespace, cut = _cut_last(s, "/")
        if not cut:
            namespace = s
        else:
            scheme, sep, rest = s.partition("://")
            host = rest if sep else scheme  # a 4th part leaves a "/" in host: invalid
    return host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG


def _valid_part(kind: str, s: str) -> bool:
    if not 1 <= len(s) <= (350 if kind == "host" else 80) or s[0] not in _WORD:
        return False
    for c in s[1:]:
        if c in _WORD or c in "-_":
            continue
        if c == "." and kind != "namespace":
            continue
        if c == ":" and kind == "host":
            continue
        return False
    return True


def valid_model_name(name: str) -> bool:
    """Whether Ollama would accept ``name`` (after filling host, namespace and tag)."""
    if not isinstance(name, str):
        return False
    parts = parse_model_name(name)
    return all(
        _valid_part(k, p) for k, p in zip(("host", "namespace", "model", "tag"), parts, strict=True)
    )


def display_name(name: str) -> str:
    """Ollama's DisplayShortest: ``model:tag``, with namespace/host only when not default."""
    host, namespace, model, tag = parse_model_name(name)
    if host.lower() != DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def _full_name(name: str) -> str:
    host, namespace, model, tag = parse_model_name(name)
    return f"{host}/{namespace}/{model}:{tag}"


_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def _goquote(s: str) -> str:
    # Close enough to Go's %q / strconv.Quote for the names and values that show up here.
    return json.dumps(s, ensure_ascii=False)


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds. Raises ValueError with Go's message."""
    s, invalid = text, ValueError(f"time: invalid duration {_goquote(text)}")
    negative = False
    if s and s[0] in "+-":
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            frac, s = s[:j], s[j:]
        if not whole and not frac:
            raise invalid
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError(f"time: missing unit in duration {_goquote(text)}")
        unit_name, s = s[:k], s[k:]
        if unit_name not in _UNITS_NS:
            raise ValueError(
                f"time: unknown unit {_goquote(unit_name)} in duration {_goquote(text)}"
            )
        unit = _UNITS_NS[unit_name]
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        if total > 2**63 - 1:
            raise invalid
    return -total if negative else total


def _go_type(value: Any) -> str:
    return {
        bool: "bool",
        str: "string",
        list: "[]interface {}",
        dict: "map[string]interface {}",
    }.get(type(value), "float64")


def _keep_alive_seconds(value: Any) -> float | None:
    """api.Duration.UnmarshalJSON: seconds to keep the model loaded; None means forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Fail(400, f"Unsupported type: '{_go_type(value)}'")
    if isinstance(value, str):
        try:
            seconds = parse_go_duration(value) / 1e9
        except ValueError as exc:
            raise _Fail(400, str(exc)) from None
    else:
        seconds = float(value)
    return None if seconds < 0 else seconds


# --------------------------------------------------------------------------------------------
# JSON and time the way Go writes them

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))
_GO_ESCAPES += (("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


# One encoder made once: json.dumps() with arguments builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_GO_ESCAPED = re.compile("[<>&\u2028\u2029]")


def _go_escape(out: str) -> str:
    if _GO_ESCAPED.search(out) is None:  # the common case: nothing to escape
        return out
    for raw, escaped in _GO_ESCAPES:
        out = out.replace(raw, escaped)
    return out


def _jstr(s: str) -> str:
    """A JSON string literal as Go's encoding/json writes it (UTF-8, <>& escaped)."""
    return _go_escape(_ENCODER.encode(s))


def _dumps(obj: Any) -> bytes:
    return _go_escape(_ENCODER.encode(obj)).encode()


_second_cache: tuple[int, str] = (-1, "")


def _created_at() -> str:
    """time.Now().UTC() in RFC3339Nano: nanoseconds with trailing zeros trimmed, then Z."""
    global _second_cache
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    cached = _second_cache
    if cached[0] != secs:  # strftime once per second, not once per chunk
        cached = _second_cache = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    digits = f"{frac:09d}".rstrip("0")
    return f"{cached[1]}.{digits}Z" if digits else f"{cached[1]}Z"


def _local_rfc3339(seconds: float) -> str:
    """RFC3339Nano in local time with its offset (or Z for UTC), like Go's time.Time JSON."""
    whole = int(seconds)
    frac = f"{round((seconds - whole) * 1e9):09d}"[:9].rstrip("0")
    dt = datetime.fromtimestamp(whole, tz=UTC).astimezone()
    offset = dt.utcoffset()
    head = dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "")
    if not offset:
        return head + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{head}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _rfc3339_sort_key(text: str) -> float:
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text or "")
    if not m:
        return 0.0
    offset = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + offset).timestamp()
    return base + float("0." + (m.group(2) or "0"))


class _Fail(Exception):
    """An error reply: {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    """The client closed the connection while we were answering."""


def _go_char(ch: str) -> str:
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + json.dumps(ch, ensure_ascii=False)[1:-1] + "'"


def _go_json_error(exc: json.JSONDecodeError) -> str:
    """Turn Python's decoder error into the message Go's encoding/json would give."""
    doc, pos = exc.doc, exc.pos
    if exc.msg.startswith("Unterminated string") or pos >= len(doc.rstrip()):
        return "unexpected EOF"
    where = {
        "Expecting property name": "looking for beginning of object key string",
        "Expecting value": "looking for beginning of value",
        "Expecting ',' delimiter": "after object key:value pair",
        "Expecting ':' delimiter": "after object key",
        "Invalid control character at": "in string literal",
    }
    for prefix, text in where.items():
        if exc.msg.startswith(prefix):
            return f"invalid character {_go_char(doc[pos])} {text}"
    if exc.msg.startswith("Invalid \\"):
        return f"invalid character {_go_char(doc[pos])} in string escape code"
    return f"invalid character {_go_char(doc[pos])} looking for beginning of value"


def _load_json(raw: bytes, struct: str) -> dict[str, Any]:
    """gin's ShouldBindJSON: empty body, syntax errors, non-objects; trailing data ignored."""
    text = raw.decode("utf-8", "replace").lstrip()
    if not text.strip():
        raise _Fail(400, "missing request body")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text)  # Go's Decoder stops after one value
    except json.JSONDecodeError as exc:
        raise _Fail(400, _go_json_error(exc)) from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise _Fail(
            400, f"json: cannot unmarshal {_json_kind(obj)} into Go value of type api.{struct}"
        )
    return obj


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _check_types(body: dict[str, Any], struct: str, fields: dict[str, str]) -> None:
    """Reject wrongly typed fields the way Go's unmarshal does (null is always fine).
    ``fields`` maps a field to its Go type: string, bool, array types, or a map type."""
    for name, gotype in fields.items():
        value = body.get(name)
        if value is None:
            continue
        if gotype == "string":
            ok = isinstance(value, str)
        elif gotype == "bool":
            ok = isinstance(value, bool)
        elif gotype.startswith("[]"):
            ok = isinstance(value, list)
        else:
            ok = isinstance(value, dict)
        if not ok:
            raise _Fail(
                400,
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"{struct}.{name} of type {gotype}",
            )


def _bad_base64(data: Any) -> int | None:
    """Where Go's base64 decoder would fail on this image, or None when it is fine."""
    if not isinstance(data, str):
        return 0
    alphabet = _WORD.union("+/") - {"_"}
    for i, c in enumerate(data):
        if c == "=":
            tail = data[i:]
            if tail.strip("=") or len(data) % 4:
                return i
            return None
        if c not in alphabet:
            return i
    if len(data) % 4:
        return len(data) - len(data) % 4
    return None


_THINK_LEVELS = ("high", "medium", "low", "max")
_OPTION_TYPES = {
    "temperature": float,
    "top_p": float,
    "min_p": float,
    "repeat_penalty": float,
    "num_ctx": int,
    "num_predict": int,
    "seed": int,
    "top_k": int,
}


# --------------------------------------------------------------------------------------------
# Installed models


def _digest(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


_LLAMA_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_QWEN_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ end }}"
)


def _default_models() -> dict[str, dict[str, Any]]:
    day = 86400.0
    now = time.time()
    return {
        "llama3.2:latest": _model_record(
            "llama3.2:latest",
            ["completion", "tools"],
            size=2019393189,
            digest="a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            modified_at=_local_rfc3339(now - 30 * day),
            family="llama",
            parameter_size="3.2B",
            quantization_level="Q4_K_M",
            context_length=131072,
            embedding_length=3072,
            template=_LLAMA_TEMPLATE,
            license="LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n"
            "Llama 3.2 Version Release Date: September 25, 2024",
            parameters='stop                           "<|start_header_id|>"\n'
            'stop                           "<|end_header_id|>"\n'
            'stop                           "<|eot_id|>"',
        ),
        "qwen3:latest": _model_record(
            "qwen3:latest",
            ["completion", "thinking", "tools"],
            size=5225388164,
            digest="500a1f067a9f782620b40bee6f7b0c89e17ae61f686b92c24933e4ca4b2b8b41",
            modified_at=_local_rfc3339(now - 10 * day),
            family="qwen3",
            parameter_size="8.2B",
            quantization_level="Q4_K_M",
            context_length=40960,
            embedding_length=4096,
            template=_QWEN_TEMPLATE,
            license="Apache License\nVersion 2.0, January 2004",
            parameters="repeat_penalty                 1\n"
            'stop                           "<|im_start|>"\n'
            'stop                           "<|im_end|>"\n'
            "temperature                    0.6\n"
            "top_k                          20\n"
            "top_p                          0.95",
        ),
        "llava:latest": _model_record(
            "llava:latest",
            ["completion", "vision"],
            size=4733363377,
            digest="8dd30f6b0cb19f555f2c7a7ebda861449ea2cc76bf1f44e262931f45fc81d081",
            modified_at=_local_rfc3339(now - 60 * day),
            family="llama",
            families=["llama", "clip"],
            parameter_size="7B",
            quantization_level="Q4_0",
            context_length=32768,
            embedding_length=4096,
            template="[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]",
            license="Apache License\nVersion 2.0, January 2004",
            parameters='stop                           "[INST]"\n'
            'stop                           "[/INST]"',
        ),
    }


_DETAIL_KEYS = (
    "parent_model",
    "format",
    "family",
    "families",
    "parameter_size",
    "quantization_level",
)


def _model_record(name: str, capabilities: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A model entry for ``FakeOllama.models``; detail keys in ``extra`` go into details."""
    details: dict[str, Any] = {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": None,
        "parameter_size": "1.1B",
        "quantization_level": "Q4_0",
    }
    details.update(extra.pop("details", {}) or {})
    for key in _DETAIL_KEYS:
        if key in extra:
            details[key] = extra.pop(key)
    if not details["families"]:
        details["families"] = [details["family"]]
    record: dict[str, Any] = {
        "details": details,
        "size": 637700138,
        "digest": _digest(name),
        "modified_at": _local_rfc3339(time.time()),
        "capabilities": list(capabilities or ["completion"]),
        "context_length": 4096,
        "embedding_length": 2048,
        "template": "{{ .Prompt }}",
        "system": "",
        "license": "",
        "parameters": "",
    }
    record.update(extra)
    return record


def _parameter_count(size: str) -> int:
    m = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", size or "", re.IGNORECASE)
    if not m:
        return 0
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck stream never keeps the test process alive
    block_on_close = False  # stop() must not wait for idle keep-alive connections
    allow_reuse_address = True  # restart on the same port while old sockets sit in TIME_WAIT
    request_queue_size = 1024  # hundreds of clients connect at once in benchmarks

    def __init__(self, address: tuple[str, int], fake: FakeOllama) -> None:
        self.fake = fake
        self.stopping = False
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if self.stopping or isinstance(exc, OSError):
            return  # clients come and go; that is not a bug in the fake
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


_POLL_MASK = (
    select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
    if hasattr(select, "poll")
    else 0
)

_ROUTES: dict[str, dict[str, str]] = {
    "/": {"GET": "_root", "HEAD": "_root"},
    "/api/tags": {"GET": "_tags", "HEAD": "_tags"},
    "/api/ps": {"GET": "_ps"},
    "/api/version": {"GET": "_version", "HEAD": "_version"},
    "/api/show": {"POST": "_show"},
    "/api/delete": {"DELETE": "_delete"},
    "/api/copy": {"POST": "_copy"},
    "/api/pull": {"POST": "_pull"},
    "/api/chat": {"POST": "_chat"},
    "/api/generate": {"POST": "_generate"},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: httpx reuses connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Each NDJSON chunk is one small write; Nagle + delayed ACK would hold them ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._poller = None
        if _POLL_MASK:
            # poll, not select.select: the latter fails on fds >= 1024 (many open sockets).
            self._poller = select.poll()
            self._poller.register(self.connection.fileno(), _POLL_MASK)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    # ---- dispatch -----------------------------------------------------------------------

    def _dispatch(self) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        body = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        self._rec = Recorded(
            self.command, path, body, time.time(), authorization=self.headers.get("Authorization")
        )
        self._aborted = False
        fake._record(self._rec)
        try:
            routes = _ROUTES.get(path)
            if routes is None:
                self._send(404, b"404 page not found", "text/plain")
            elif self.command not in routes:
                self._send(405, b"405 method not allowed", "text/plain")
            else:
                try:
                    getattr(self, routes[self.command])(raw)
                except _Fail as fail:
                    self._send_error(fail.status, fail.message)
        except _ClientGone:
            self._aborted = True
            self.close_connection = True
            if not self.server.stopping:  # our own shutdown is not the client hanging up
                self._rec.disconnected = True
        finally:
            if self._aborted:
                self._rec.finished = False
            fake._notify()

    # BaseHTTPRequestHandler looks up do_<METHOD>; one dispatcher answers 404/405 like gin.
    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                try:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True  # cannot find the next request: give up
                    return b"".join(parts)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # ---- writing ------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        self._rec.status = status
        self.log_request(status)
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Date: {self.date_time_string()}",
        ]
        lines += [f"{k}: {v}" for k, v in headers]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _sendall(self, data: bytes) -> None:
        try:
            self.connection.sendall(data)
        except OSError:
            raise _ClientGone from None

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        headers = [("Content-Type", content_type)] if content_type else []
        headers.append(("Content-Length", str(len(body))))
        head = self._head(status, headers)
        # Marked before the write: a client that has read the reply may look at once.
        self._rec.finished = True
        self._sendall(head if self.command == "HEAD" else head + body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, _dumps(obj), "application/json; charset=utf-8")

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _start_stream(self) -> None:
        self._chunked = self.request_version != "HTTP/1.0"
        if not self._chunked:
            self.close_connection = True  # HTTP/1.0: no chunking, the end is the close
            headers = [("Content-Type", "application/x-ndjson")]
        else:
            headers = [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")]
        self._sendall(self._head(200, headers))

    def _chunk(self, line: bytes) -> None:
        """One NDJSON line (already ending in newline), sent at once in its own HTTP chunk."""
        if self._chunked:
            self._sendall(b"%x\r\n%s\r\n" % (len(line), line))
        else:
            self._sendall(line)

    def _end_stream(self) -> None:
        self._rec.finished = True  # before the write, as in _send
        if self._chunked:
            self._sendall(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close abruptly: no zero-length chunk, so the client sees a broken stream."""
        self._aborted = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ---- waiting, with an ear on the client ---------------------------------------------

    def _client_closed(self) -> bool:
        try:
            data = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return data == b""

    def _wait_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (monotonic) but raise _ClientGone the moment the client
        closes: a closed socket polls readable and a peek returns b"" (or an error)."""
        while True:
            timeout = max(0.0, deadline - time.monotonic())
            if self._poller is not None:
                ready = bool(self._poller.poll(timeout * 1000))
            else:
                ready = bool(select.select([self.connection], [], [], timeout)[0])
            if ready:
                if self._client_closed():
                    raise _ClientGone
                # Bytes from the client mid-response (a pipelined request): we can no longer
                # watch the socket without spinning, so just sleep out the rest.
                rest = deadline - time.monotonic()
                if rest > 0:
                    time.sleep(rest)
                return
            if time.monotonic() >= deadline:
                return

    # ---- simple routes ------------------------------------------------------------------

    def _root(self, raw: bytes) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _version(self, raw: bytes) -> None:
        self._send_json(200, {"version": self.server.fake.version})

    def _tags(self, raw: bytes) -> None:
        fake = self.server.fake
        entries = []
        for name, m in fake._models_snapshot():
            entries.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": m["modified_at"],
                    "size": m["size"],
                    "digest": m["digest"],
                    "details": m["details"],
                }
            )
        entries.sort(key=lambda e: _rfc3339_sort_key(e["modified_at"]), reverse=True)
        self._send_json(200, {"models": entries})

    def _ps(self, raw: bytes) -> None:
        self._send_json(200, {"models": self.server.fake._ps_entries()})

    def _show(self, raw: bytes) -> None:
        fake = self.server.fake
        req = _load_json(raw, "ShowRequest")
        _check_types(req, "ShowRequest", {"model": "string", "name": "string", "verbose": "bool"})
        name = req.get("model") or req.get("name") or ""
        if not name:
            raise _Fail(400, "model is required")
        if not valid_model_name(name):
            raise _Fail(400, "invalid model name")
        found = fake._find_model(name)
        if found is None:
            raise _Fail(404, f"model '{display_name(name)}' not found")
        key, m = found
        details = m["details"]
        family = details.get("family") or "llama"
        model_info: dict[str, Any] = {
            "general.architecture": family,
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(details.get("parameter_size", "")),
            "general.quantization_version": 2,
            f"{family}.context_length": m.get("context_length", 4096),
            f"{family}.embedding_length": m.get("embedding_length", 2048),
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": [],  # token arrays stay empty unless verbose
        }
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {key}\n\n"
            f"FROM /root/.ollama/models/blobs/sha256-{m['digest']}\n"
            f'TEMPLATE """{m.get("template", "")}"""\n'
        )
        if m.get("system"):
            modelfile += f'SYSTEM """{m["system"]}"""\n'
        for line in (m.get("parameters") or "").splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2:
                modelfile += f"PARAMETER {parts[0]} {parts[1]}\n"
        if m.get("license"):
            modelfile += f'LICENSE """{m["license"]}"""\n'
        reply: dict[str, Any] = {}
        if m.get("license"):
            reply["license"] = m["license"]
        reply["modelfile"] = modelfile
        if m.get("parameters"):
            reply["parameters"] = m["parameters"]
        reply["template"] = m.get("template", "")
        if m.get("system"):
            reply["system"] = m["system"]
        reply["details"] = details
        reply["model_info"] = model_info
        if "vision" in m["capabilities"]:
            reply["projector_info"] = {
                "clip.has_vision_encoder": True,
                "general.architecture": "clip",
            }
        reply["capabilities"] = m["capabilities"]
        reply["modified_at"] = m["modified_at"]
        self._send_json(200, reply)

    def _delete(self, raw: bytes) -> None:
        fake = self.server.fake
        req = _load_json(raw, "DeleteRequest")
        _check_types(req, "DeleteRequest", {"model": "string", "name": "string"})
        name = req.get("model") or req.get("name") or ""
        if not valid_model_name(name):
            raise _Fail(400, f"name {_goquote(name)} is invalid")
        if not fake._delete_model(name):
            raise _Fail(404, f"model '{name}' not found")
        self._send(200, b"", None)

    def _copy(self, raw: bytes) -> None:
        fake = self.server.fake
        req = _load_json(raw, "CopyRequest")
        _check_types(req, "CopyRequest", {"source": "string", "destination": "string"})
        source, destination = req.get("source") or "", req.get("destination") or ""
        if not valid_model_name(source):
            raise _Fail(400, f"source {_goquote(source)} is invalid")
        if not valid_model_name(destination):
            raise _Fail(400, f"destination {_goquote(destination)} is invalid")
        if not fake._copy_model(source, destination):
            raise _Fail(404, f"model {_goquote(source)} not found")
        self._send(200, b"", None)

    # ---- pull ---------------------------------------------------------------------------

    def _pull(self, raw: bytes) -> None:
        fake = self.server.fake
        req = _load_json(raw, "PullRequest")
        _check_types(
            req,
            "PullRequest",
            {"model": "string", "name": "string", "stream": "bool", "insecure": "bool"},
        )
        name = req.get("model") or req.get("name") or ""
        if not valid_model_name(name):
            raise _Fail(400, "invalid model name")
        if fake.busy:
            raise _Fail(503, BUSY)
        stream = req.get("stream") is not False
        key = display_name(name)
        plan = fake._pull_plan(key)
        delay, steps = max(0.0, fake.pull_delay), max(1, int(fake.pull_steps))
        next_at = time.monotonic()

        def emit(obj: dict[str, Any]) -> None:
            nonlocal next_at
            if stream:
                self._chunk(_dumps(obj) + b"\n")
            next_at += delay
            self._wait_until(next_at)

        if stream:
            self._start_stream()
        emit({"status": "pulling manifest"})
        script = fake._pull_script(key)
        if script is not None:
            self._scripted_pull(key, script, stream, emit)
            return
        if plan is None:
            error = "pull model manifest: file does not exist"
            if stream:
                self._chunk(_dumps({"error": error}) + b"\n")
                self._end_stream()
            else:
                self._send_error(500, error)
            return
        layers, extra = plan
        for index, size in enumerate(layers):
            digest = _digest(f"{key}#{index}")
            base = {"status": f"pulling {digest[:12]}", "digest": f"sha256:{digest}", "total": size}
            if extra is None:  # already on disk: one line, complete
                emit({**base, "completed": size})
                continue
            for step in range(steps + 1):
                completed = size * step // steps
                emit({**base, "completed": completed} if completed else base)
        emit({"status": "verifying sha256 digest"})
        emit({"status": "writing manifest"})
        fake._install_pulled(key, layers, extra)
        if stream:
            self._chunk(_dumps({"status": "success"}) + b"\n")
            self._end_stream()
        else:
            self._send_json(200, {"status": "success"})

    def _scripted_pull(self, key: str, script: list[dict[str, Any]], stream: bool, emit) -> None:
        sizes: dict[str, int] = {}
        for line in script:
            if "error" in line:
                if stream:
                    self._chunk(_dumps(line) + b"\n")
                    self._end_stream()
                else:
                    self._send_error(500, str(line["error"]))
                return
            if isinstance(line.get("digest"), str) and isinstance(line.get("total"), int):
                sizes[line["digest"]] = line["total"]
            emit(line)
        self.server.fake._install_pulled(key, list(sizes.values()) or [1], {})
        if stream:
            self._chunk(_dumps({"status": "success"}) + b"\n")
            self._end_stream()
        else:
            self._send_json(200, {"status": "success"})

    # ---- chat and generate --------------------------------------------------------------

    def _chat(self, raw: bytes) -> None:
        self._complete(raw, chat=True)

    def _generate(self, raw: bytes) -> None:
        self._complete(raw, chat=False)

    def _complete(self, raw: bytes, chat: bool) -> None:
        fake = self.server.fake
        struct = "ChatRequest" if chat else "GenerateRequest"
        req = _load_json(raw, struct)
        types = {"model": "string", "stream": "bool", "options": "map[string]interface {}"}
        if chat:
            types.update({"messages": "[]api.Message", "tools": "[]api.Tool"})
        else:
            types.update(
                {"prompt": "string", "system": "string", "raw": "bool", "images": "[]api.ImageData"}
            )
        _check_types(req, struct, types)
        # Checked while unmarshalling in Go, so before anything about the model.
        keep_alive = _keep_alive_seconds(req.get("keep_alive"))
        think = req.get("think")
        if think is not None and not isinstance(think, bool) and think not in _THINK_LEVELS:
            shown = think if isinstance(think, str) else json.dumps(think)
            raise _Fail(
                400,
                f'invalid think value: "{shown}" '
                '(must be "high", "medium", "low", "max", true, or false)',
            )
        fmt = req.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            shown = fmt if isinstance(fmt, str) else json.dumps(fmt)
            raise _Fail(
                400, f'invalid format: "{shown}": expected "json" or a valid JSON Schema object'
            )
        messages = (req.get("messages") or []) if chat else []
        images = [
            img for msg in messages if isinstance(msg, dict) for img in msg.get("images") or []
        ]
        if chat:
            for msg in messages:
                if not isinstance(msg, dict):
                    raise _Fail(
                        400,
                        f"json: cannot unmarshal {_json_kind(msg)} into Go struct field "
                        f"ChatRequest.messages of type api.Message",
                    )
                for key in ("role", "content", "thinking"):
                    if msg.get(key) is not None and not isinstance(msg.get(key), str):
                        raise _Fail(
                            400,
                            f"json: cannot unmarshal {_json_kind(msg[key])} into Go struct field "
                            f"ChatRequest.messages.{key} of type string",
                        )
        else:
            images = list(req.get("images") or [])
            if req.get("raw") and (req.get("template") or req.get("system") or req.get("context")):
                raise _Fail(400, "raw mode does not support template, system, or context")
        for img in images:
            pos = _bad_base64(img)
            if pos is not None:
                raise _Fail(400, f"illegal base64 data at input byte {pos}")

        model = req.get("model") or ""
        if not model:
            # chat says "model is required"; generate has long answered 404 for an empty name.
            raise _Fail(400, "model is required") if chat else _Fail(404, "model '' not found")
        if not valid_model_name(model):
            raise _Fail(400, "invalid model name")
        found = fake._find_model(model)
        if found is None:
            raise _Fail(404, f"model '{model}' not found")
        key, record = found
        caps = record["capabilities"]
        empty = not messages if chat else not (req.get("prompt") or "")

        if empty and keep_alive == 0:
            fake._unload(key)
            self._send_json(200, self._load_reply(model, chat, "unload"))
            return
        if "completion" not in caps:
            raise _Fail(400, f"{_goquote(model)} does not support {'chat' if chat else 'generate'}")
        if req.get("tools") and "tools" not in caps:
            raise _Fail(400, f"{_full_name(key)} does not support tools")
        if not chat and req.get("suffix") and "insert" not in caps:
            raise _Fail(400, f"{_goquote(model)} does not support insert")
        if think not in (None, False) and "thinking" not in caps:
            raise _Fail(400, f"{_goquote(model)} does not support thinking")
        for opt, kind in _OPTION_TYPES.items():
            value = (req.get("options") or {}).get(opt)
            if value is None:
                continue
            good = isinstance(value, int | float) and not isinstance(value, bool)
            if kind is int and good and float(value) != int(value):
                good = False
            if not good:
                gotype = "float32" if kind is float else "integer"
                raise _Fail(500, f'option "{opt}" must be of type {gotype}')
        # --- the scheduler: this is where Ollama answers 503 when its queue is full ---
        if fake.busy:
            raise _Fail(503, BUSY)
        num_ctx = (req.get("options") or {}).get("num_ctx")
        was_loaded = fake._mark_running(key, keep_alive, num_ctx)
        if empty:
            self._send_json(200, self._load_reply(model, chat, "load"))
            return

        reply = fake._next_reply(key)
        if chat:
            words = sum(len(str(m.get("content") or "").split()) for m in messages)
        else:
            words = len(str(req.get("prompt") or "").split()) + len(
                str(req.get("system") or "").split()
            )
        try:
            self._answer(
                req=req,
                model=model,
                chat=chat,
                reply=reply,
                stream=req.get("stream") is not False,
                think=think,
                prompt_tokens=max(1, words),
                was_loaded=was_loaded,
                # Before the last write, so /api/ps is up to date once the client has the end.
                before_final=lambda: fake._touch_running(key, keep_alive),
            )
        finally:
            fake._touch_running(key, keep_alive)

    @staticmethod
    def _load_reply(model: str, chat: bool, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": _created_at()}
        if chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out["done"] = True
        out["done_reason"] = reason
        return out

    def _answer(
        self,
        *,
        req: dict[str, Any],
        model: str,
        chat: bool,
        reply: Reply,
        stream: bool,
        think: Any,
        prompt_tokens: int,
        was_loaded: bool,
        before_final: Callable[[], None],
    ) -> None:
        started_ns = time.time_ns()
        t0 = time.monotonic()
        if reply.first_delay > 0:
            self._wait_until(t0 + reply.first_delay)
        if reply.status != 200:
            self._send_error(reply.status, reply.error or RUNNER_STOPPED)
            return

        # What to send: (kind, token) with kind "t" thinking or "c" content; token None is a
        # timestamp, made at the moment it is written.
        thinking = _tokens(reply.thinking) if think is not False else []
        content: list[str | None] = (
            [None] * reply.tokens if reply.timestamps else _tokens(reply.content)
        )
        plan: list[tuple[str, str | None]]
        if reply.legacy_think and thinking:
            plan = [("c", "<think>"), *(("c", t) for t in thinking), ("c", "</think>\n\n")]
        else:
            plan = [("t", t) for t in thinking]
        plan += [("c", t) for t in content]
        tool_calls = []
        if chat and reply.tool_calls and req.get("tools"):
            for index, call in enumerate(reply.tool_calls):
                fn = dict(call.get("function", call))
                fn = {
                    "index": index,
                    "name": fn.get("name", ""),
                    "arguments": fn.get("arguments", {}),
                }
                call_id = "call_" + "".join(
                    secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)
                )
                tool_calls.append({"id": call_id, "function": fn})

        # Precomputed framing: per chunk only the timestamp and the token are formatted.
        head = b'{"model":' + _jstr(model).encode() + b',"created_at":"'
        if chat:
            content_mid = b'","message":{"role":"assistant","content":'
            content_end = b'},"done":false}\n'
            think_mid = b'","message":{"role":"assistant","content":"","thinking":'
            think_end = content_end
        else:
            content_mid = b'","response":'
            content_end = b',"done":false}\n'
            think_mid = b'","response":"","thinking":'
            think_end = content_end

        interval = 1.0 / reply.rate if reply.rate else max(0.0, reply.delay)
        error_text = reply.error or RUNNER_STOPPED
        sent = content_sent = 0
        parts: dict[str, list[str]] = {"t": [], "c": []}
        if stream:
            self._start_stream()
        eval_start = time.monotonic_ns()
        next_at = time.monotonic()
        for index, (kind, token) in enumerate(plan):
            if index:
                if interval:
                    next_at += interval
                self._wait_until(next_at)  # also notices a client that has gone
            if reply.resume is not None and sent == reply.hold_after:
                while not reply.resume.is_set():
                    self._wait_until(time.monotonic() + 0.05)  # notices a client gone
                next_at = time.monotonic()
            if reply.drop_after is not None and sent >= reply.drop_after:
                self._drop()
                return
            if kind == "c" and reply.error_after is not None and content_sent >= reply.error_after:
                self._fail_midway(stream, error_text)
                return
            if token is None:
                token = f" t{time.time_ns()}"
            if stream:
                if kind == "c":
                    line = (
                        head
                        + _created_at().encode()
                        + content_mid
                        + _jstr(token).encode()
                        + content_end
                    )
                else:
                    line = (
                        head
                        + _created_at().encode()
                        + think_mid
                        + _jstr(token).encode()
                        + think_end
                    )
                self._chunk(line)
            parts[kind].append(token)
            sent += 1
            content_sent += kind == "c"
        if tool_calls:
            if interval:
                next_at += interval
            self._wait_until(next_at)
            if stream:
                msg = {"role": "assistant", "content": "", "tool_calls": tool_calls}
                self._chunk(
                    _dumps(
                        {"model": model, "created_at": _created_at(), "message": msg, "done": False}
                    )
                    + b"\n"
                )
        if reply.drop_after is not None and sent >= reply.drop_after:
            self._drop()
            return
        if reply.error_after is not None and content_sent >= reply.error_after:
            self._fail_midway(stream, error_text)
            return

        # The first token took an interval to make too, so eval_count / eval_duration == rate.
        eval_ns = max(1, time.monotonic_ns() - eval_start + int(interval * 1e9))
        load_ns = int(reply.first_delay * 1e9) + (35_000 if was_loaded else 1_250_000)
        prompt_ns = prompt_tokens * 250_000
        final: dict[str, Any] = {"model": model, "created_at": _created_at()}
        if chat:
            msg = {"role": "assistant", "content": "".join(parts["c"]) if not stream else ""}
            if not stream and parts["t"]:
                msg["thinking"] = "".join(parts["t"])
            if not stream and tool_calls:
                msg["tool_calls"] = tool_calls
            final["message"] = msg
        else:
            final["response"] = "".join(parts["c"]) if not stream else ""
            if not stream and parts["t"]:
                final["thinking"] = "".join(parts["t"])
        final["done"] = True
        if reply.done_reason:
            final["done_reason"] = reply.done_reason
        final["total_duration"] = max(time.time_ns() - started_ns, load_ns + prompt_ns + eval_ns)
        final["load_duration"] = load_ns
        final["prompt_eval_count"] = (
            prompt_tokens if reply.prompt_eval_count is None else reply.prompt_eval_count
        )
        final["prompt_eval_duration"] = prompt_ns
        final["eval_count"] = sent
        final["eval_duration"] = eval_ns
        if not chat and not req.get("raw"):
            count = min(prompt_tokens + sent, 4096)
            final["context"] = [(i * 7919 + 128000) % 128256 for i in range(count)]
        before_final()
        if stream:
            self._chunk(_dumps(final) + b"\n")
            self._end_stream()
        else:
            self._send_json(200, final)

    def _fail_midway(self, stream: bool, message: str) -> None:
        # Once 200 is on the wire the status cannot change: one error line, then the end.
        if stream:
            self._chunk(_dumps({"error": message}) + b"\n")
            self._end_stream()
        else:
            self._send_error(500, message)


# --------------------------------------------------------------------------------------------
# The public object


class FakeOllama:
    """A scriptable Ollama on loopback. See the module docstring for a tour."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default_reply: Reply | None = None,
        default_replies: dict[str, Reply] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self._port = port
        self.verbose = verbose  # log one line per request to stderr
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._initial_default_reply = default_reply or Reply()
        self._initial_default_replies = dict(default_replies or {})
        self._requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._model_queues: dict[str, deque[Reply]] = {}
        self._running: dict[str, dict[str, Any]] = {}
        self._set_defaults()

    def _set_defaults(self) -> None:
        self.models: dict[str, dict[str, Any]] = _default_models()
        # name -> layer sizes (or {"layers": [...], **add_model extras}) that /api/pull can fetch.
        self.pullable: dict[str, Any] = {"tinyllama:latest": [40_000_000, 2_000, 500]}
        # name -> the exact lines /api/pull streams after "pulling manifest", for shapes
        # the layer plan can't make (a layer's total changing, an error mid-layer). An
        # {"error": ...} line ends the stream there; otherwise the model is installed and
        # "success" follows. Checked before ``pullable``.
        self.pull_scripts: dict[str, list[dict[str, Any]]] = {}
        self.pull_delay: float = 0.01  # seconds between pull progress lines
        self.pull_steps: int = 10  # progress lines per layer
        self.busy: bool = False  # chat/generate/pull answer 503 "server busy"
        self.version: str = DEFAULT_VERSION
        self.default_reply: Reply = copy.deepcopy(self._initial_default_reply)
        # Per-model fallbacks ("qwen3" or "qwen3:latest"), used before default_reply.
        self.default_replies: dict[str, Reply] = copy.deepcopy(self._initial_default_replies)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Serve in a background thread. After stop(), starts again on the same port."""
        if self._server is not None:
            return self
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-ollama",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (as if Ollama had died)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping = True
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        with self._cond:
            self._running.clear()  # a restarted Ollama has nothing loaded
            self._cond.notify_all()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    # ---- scripting ----------------------------------------------------------------------

    def push_reply(self, reply: Reply, model: str | None = None) -> None:
        """Queue ``reply`` for the next chat/generate with messages (for ``model`` only)."""
        with self._lock:
            if model is None:
                self._queue.append(reply)
            else:
                self._model_queues.setdefault(display_name(model).lower(), deque()).append(reply)

    def add_model(self, name: str, capabilities: list[str] | None = None, **extra: Any) -> str:
        """Install a model; detail keys (family, parameter_size, ...) in ``extra`` go into
        ``details``, the rest (size, digest, context_length, template, ...) on the entry.
        Returns its display name (``name:latest`` when no tag)."""
        key = display_name(name)
        with self._lock:
            found = self._find_model(key)
            if found is not None:
                del self.models[found[0]]
            self.models[key] = _model_record(key, capabilities, **extra)
        return key

    def remove_model(self, name: str) -> bool:
        """Uninstall a model (case-insensitive, ``:latest`` implied). False if absent."""
        return self._delete_model(name)

    def reset(self) -> None:
        """Forget requests and queued replies; default models, pullable, version; not busy."""
        with self._cond:
            self._requests.clear()
            self._queue.clear()
            self._model_queues.clear()
            self._running.clear()
            self._set_defaults()
            self._cond.notify_all()

    # ---- inspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the POST /api/chat requests that had messages."""
        return [
            r.body
            for r in self.requests
            if r.method == "POST"
            and r.path == "/api/chat"
            and isinstance(r.body, dict)
            and r.body.get("messages")
        ]

    def last_chat(self) -> dict[str, Any] | None:
        """The body of the latest chat request with messages, or None."""
        chats = self.chat_requests()
        return chats[-1] if chats else None

    def running_models(self) -> list[str]:
        """Names currently in /api/ps."""
        return [e["name"] for e in self._ps_entries()]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` is true; False on timeout. Woken by each request event."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """True once any request was closed by the client before its response finished."""
        return self.wait_for(lambda: any(r.disconnected for r in self.requests), timeout)

    # ---- used by the handler (all under the lock) ---------------------------------------

    def _record(self, rec: Recorded) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _models_snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(display_name(k), v) for k, v in list(self.models.items())]

    def _find_model(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """Case-insensitive lookup with ``:latest`` implied; returns the stored key."""
        wanted = display_name(name).lower()
        with self._lock:
            for key, record in list(self.models.items()):
                if display_name(key).lower() == wanted:
                    return key, record
        return None

    def _delete_model(self, name: str) -> bool:
        with self._lock:
            found = self._find_model(name)
            if found is None:
                return False
            del self.models[found[0]]
            self._running.pop(display_name(found[0]).lower(), None)  # nothing left to run
            return True

    def _copy_model(self, source: str, destination: str) -> bool:
        with self._lock:
            found = self._find_model(source)
            if found is None:
                return False
            record = copy.deepcopy(found[1])
            record["modified_at"] = _local_rfc3339(time.time())
            old = self._find_model(destination)
            if old is not None:
                del self.models[old[0]]
            self.models[display_name(destination)] = record
            return True

    def _pull_script(self, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            for name, script in self.pull_scripts.items():
                if display_name(name).lower() == key.lower():
                    return [dict(line) for line in script]
        return None

    def _pull_plan(self, key: str) -> tuple[list[int], dict[str, Any] | None] | None:
        """(layer sizes, add_model extras) for a pull; extras None = already installed."""
        with self._lock:
            for name, spec in list(self.pullable.items()):
                if display_name(name).lower() == key.lower():
                    if isinstance(spec, dict):
                        extra = dict(spec)
                        return list(extra.pop("layers", [1_000_000])), extra
                    return list(spec), {}
            found = self._find_model(key)
            if found is not None:  # the registry has what we have: every layer on disk
                return [found[1]["size"]], None
        return None

    def _install_pulled(self, key: str, layers: list[int], extra: dict[str, Any] | None) -> None:
        with self._lock:
            found = self._find_model(key)
            if extra is None and found is not None:
                found[1]["modified_at"] = _local_rfc3339(time.time())
                return
            extra = dict(extra or {})
            extra.setdefault("size", sum(layers))
            capabilities = extra.pop("capabilities", None)
            self.add_model(key, capabilities, **extra)

    def _next_reply(self, key: str) -> Reply:
        with self._lock:
            queue = self._model_queues.get(key.lower())
            if queue:
                return queue.popleft()
            if self._queue:
                return self._queue.popleft()
            for name, reply in list(self.default_replies.items()):
                if display_name(name).lower() == key.lower():
                    return reply
            return self.default_reply

    def _mark_running(self, key: str, keep_alive: float | None, num_ctx: Any) -> bool:
        """The model is loaded now; returns whether it already was."""
        now = time.time()
        with self._lock:
            self._expire(now)
            ident = key.lower()
            was = ident in self._running
            entry = self._running.setdefault(ident, {"name": key})
            entry["expires"] = None if keep_alive is None else now + keep_alive
            if isinstance(num_ctx, int) and not isinstance(num_ctx, bool) and num_ctx > 0:
                # Ollama loads at most the model's own context length (it warns "requested
                # context size too large for model").
                found = self._find_model(key)
                limit = found[1].get("context_length") if found else None
                entry["context_length"] = min(num_ctx, limit) if limit else num_ctx
            return was

    def _touch_running(self, key: str, keep_alive: float | None) -> None:
        """The request finished: the keep-alive timer starts now (0 unloads at once)."""
        with self._lock:
            entry = self._running.get(key.lower())
            if entry is None:
                return
            if keep_alive == 0:
                del self._running[key.lower()]
            else:
                entry["expires"] = None if keep_alive is None else time.time() + keep_alive

    def _unload(self, key: str) -> None:
        with self._lock:
            self._running.pop(key.lower(), None)

    def _expire(self, now: float) -> None:
        for ident, entry in list(self._running.items()):
            if entry["expires"] is not None and entry["expires"] <= now:
                del self._running[ident]

    def _ps_entries(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            self._expire(now)
            rows = []
            for entry in self._running.values():
                found = self._find_model(entry["name"])
                if found is None:
                    continue
                name, m = display_name(found[0]), found[1]
                expires = entry["expires"]
                remaining = FOREVER_SECONDS if expires is None else expires - now
                ctx = entry.get("context_length") or min(m.get("context_length", 4096), 4096)
                row = {
                    "name": name,
                    "model": name,
                    "size": m["size"],
                    "digest": m["digest"],
                    "details": m["details"],
                    "expires_at": _local_rfc3339(now + remaining),
                    # add_model(..., size_vram=n) with n < size: partly on the CPU.
                    "size_vram": m.get("size_vram", m["size"]),
                    "context_length": ctx,
                }
                rows.append((remaining, row))
        rows.sort(key=lambda r: r[0], reverse=True)  # longest time remaining first
        return [row for _, row in rows]


# --------------------------------------------------------------------------------------------
# Command line: a stand-in Ollama for trying the UI

DEMO_ANSWER = """## Why the sky is blue

Sunlight looks white, but it is a mix of every colour. On its way through the air:

- **Short wavelengths** (blue, violet) are scattered strongly by nitrogen and oxygen.
- **Long wavelengths** (red, orange) mostly pass straight through.
- Our eyes are more sensitive to blue than to violet, so the sky looks *blue*.

This is **Rayleigh scattering**, and it grows as 1/λ⁴:

```python
def relative_scattering(wavelength_nm: float, reference_nm: float = 700.0) -> float:
    return (reference_nm / wavelength_nm) ** 4

print(f"Blue scatters {relative_scattering(450):.1f}x more than red")
```

At sunset the light crosses much more air, the blue is scattered away, and the reds remain."""

DEMO_THINKING = (
    "Okay, the user wants to know why the sky is blue. That is Rayleigh scattering: "
    "shorter wavelengths scatter more, by the inverse fourth power. I should give a short "
    "heading, a list of the key points, and a tiny code example to make the 1/λ⁴ concrete."
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Ollama server for trying the UI.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second (0: no pause)")
    parser.add_argument(
        "--timestamps", action="store_true", help="benchmark mode: tokens are send times"
    )
    parser.add_argument(
        "--tokens", type=int, default=200, help="tokens per answer in --timestamps mode"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    rate = args.rate or None
    if args.timestamps:
        default = Reply(timestamps=True, tokens=args.tokens, rate=rate)
        per_model: dict[str, Reply] = {}
    else:
        default = Reply(content=DEMO_ANSWER, rate=rate)
        per_model = {"qwen3:latest": Reply(content=DEMO_ANSWER, thinking=DEMO_THINKING, rate=rate)}
    fake = FakeOllama(
        args.host,
        args.port,
        default_reply=default,
        default_replies=per_model,
        verbose=not args.quiet,
    )
    fake.start()
    print(f"Fake Ollama listening on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
