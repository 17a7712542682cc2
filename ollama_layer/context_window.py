"""The context window of a request: how many tokens the model could see (what the page
makes of it, overflow and gauge: chat/context_window.py).

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

The relay looks it up while the answer streams (the model is loaded then) and saves it in
the answer's stats as `context_window`.
"""

import asyncio
import logging
import time

from ollama_layer.client import OllamaClient, OllamaError, OllamaUnavailable
from ollama_layer.names import normalise

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
    key = (url, normalise(model))
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
    name = normalise(model)
    for entry in running:
        if normalise(entry.get("name") or entry.get("model") or "") == name:
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
