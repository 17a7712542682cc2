"""The context window of an answer: how many tokens the model could see, whether the
conversation overflowed it, and how full it is.

Ollama silently drops the start of a prompt longer than the window, so a
`prompt_eval_count` that reaches the window means the model did not see the oldest part
of the conversation. The window of an answer is, in this order (ollama-api.md §3, §8):

1. the `num_ctx` option the request sent, capped at the model's own context length, as
   Ollama caps it ("min(options.num_ctx, the model's context length)");
2. else the `context_length` that /api/ps reports for the loaded model: the num_ctx its
   runner was loaded with, whatever chose it (a Modelfile `PARAMETER num_ctx`,
   `OLLAMA_CONTEXT_LENGTH`, or the server's default for the memory it has);
3. else the model's own context length, `model_info["<arch>.context_length"]` from
   /api/show: an upper bound, so a prompt that reaches it was cut for certain.

It is looked up while the answer streams (the model is loaded then) and saved in the
answer's stats as `context_window`.
"""

import asyncio
import logging
import time

from chat import hosts
from chat.ollama import OllamaClient, OllamaError, OllamaUnavailable

log = logging.getLogger(__name__)

LOOKUP_SECONDS = 2.0  # at most this long after the answer's last token
CACHE_SECONDS = 60  # a model's own context length changes only when it is pulled again
_lengths: dict[tuple[str, str], tuple[float, int | None]] = {}


def _positive(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def context_length_of(shown: dict) -> int | None:
    """The model's own context length from an /api/show reply (`<arch>.context_length`
    in `model_info`), or None when it does not say."""
    for key, value in (shown.get("model_info") or {}).items():
        if key.endswith(".context_length") and _positive(value):
            return value
    return None


async def model_context_length(url: str, model: str) -> int | None:
    """The longest context `model` was made for (tokens), from /api/show on the host at
    `url`; None when Ollama can't tell. Cached for CACHE_SECONDS."""
    key = (url, hosts.normalise(model))
    hit = _lengths.get(key)
    if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    try:
        length = context_length_of(await OllamaClient(url).show(model))
    except (OllamaError, OllamaUnavailable):
        return None
    _lengths[key] = (time.monotonic(), length)
    return length


async def loaded_context_length(url: str, model: str) -> int | None:
    """The context (tokens) `model` is loaded with on the host at `url` (/api/ps
    `context_length`), or None when it is not loaded or Ollama can't tell."""
    try:
        running = await OllamaClient(url).running_models()
    except (OllamaError, OllamaUnavailable):
        return None
    name = hosts.normalise(model)
    for entry in running:
        if hosts.normalise(entry.get("name") or entry.get("model") or "") == name:
            return _positive(entry.get("context_length"))  # 0 while the runner starts
    return None


async def effective(url: str, model: str, options: dict | None) -> int | None:
    """The window (tokens) of a request for `model` with these options, answered by the
    host at `url`; None when it can't be known. Never raises for Ollama's failures."""
    num_ctx = _positive((options or {}).get("num_ctx"))
    if num_ctx:
        limit = await model_context_length(url, model)
        return min(num_ctx, limit) if limit else num_ctx
    return await loaded_context_length(url, model) or await model_context_length(url, model)


async def settle(task: asyncio.Task | None) -> int | None:
    """The result of an `effective()` task started earlier, waiting at most
    LOOKUP_SECONDS; None when it failed or took too long (the answer goes on without)."""
    if task is None:
        return None
    try:
        return await asyncio.wait_for(task, LOOKUP_SECONDS)
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise  # the answer itself is being stopped
        return None
    except TimeoutError:
        return None
    except Exception:
        log.exception("looking up the context window failed")
        return None


# --- what the page shows ----------------------------------------------------------------


def usage(stats: dict | None) -> tuple[int, int] | None:
    """(tokens used, window) of a finished answer: its prompt and its own tokens, which
    the next question adds to; None without the numbers."""
    stats = stats or {}
    window = _positive(stats.get("context_window"))
    prompt = stats.get("prompt_eval_count")
    if not window or not isinstance(prompt, int):
        return None
    answer = stats.get("eval_count")
    return prompt + (answer if isinstance(answer, int) else 0), window


def overflowed(stats: dict | None) -> bool:
    """Whether the prompt filled the window, so Ollama dropped its start."""
    stats = stats or {}
    window = _positive(stats.get("context_window"))
    prompt = stats.get("prompt_eval_count")
    return bool(window) and isinstance(prompt, int) and prompt >= window


# Whole sentences with named placeholders, ready for gettext (`_(TEXT) % {...}`).
OVERFLOW_NOTE = (
    "The conversation no longer fits in the model's context window (%(window)s tokens), so "
    "the model did not see its oldest part. Raise num_ctx in this chat's settings, or "
    "start a new chat."
)


def overflow_note(stats: dict | None) -> str:
    """The note shown under an answer whose prompt overflowed the window, or ""."""
    if not overflowed(stats):
        return ""
    return OVERFLOW_NOTE % {"window": f"{stats['context_window']:,}"}


# Said of the gauge by the page too (static/chat/context_gauge.js): keep them alike.
GAUGE_DETAIL = "The last answer used %(used)s of the %(window)s tokens the model can see."
# When the prompt reached the window, "used 2,053 of the 2,048" would read as a mistake.
GAUGE_FULL = (
    "The last answer filled all %(window)s tokens the model can see: the oldest messages "
    "no longer reach the model."
)
GAUGE_LOW, GAUGE_HIGH = 0.7, 0.9  # of the window: where the meter turns amber, then red


def gauge(messages: list) -> dict | None:
    """The composer's context gauge for a branch on screen: the numbers of its last
    answer that has them (`usage`), as the template shows them; None when none has."""
    for message in reversed(messages):
        found = usage(message.stats) if message.role == "assistant" else None
        if found:
            break
    else:
        return None
    used, window = found
    numbers = {"used": f"{used:,}", "window": f"{window:,}"}
    detail = (GAUGE_FULL if used >= window else GAUGE_DETAIL) % numbers
    return {
        "used": used,
        "window": window,
        "percent": min(100, round(used * 100 / window)),
        "low": round(window * GAUGE_LOW),
        "high": round(window * GAUGE_HIGH),
        "detail": detail,
    }
