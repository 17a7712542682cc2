"""What a model can do, from Ollama's /api/show, cached briefly: asked before every
message that carries images, and by the page when an image is attached."""

import time

from ollama_layer import hosts
from ollama_layer.client import OllamaError, OllamaUnavailable

CACHE_SECONDS = 60
_cache: dict[str, tuple[float, list[str]]] = {}


async def capabilities(model: str) -> list[str] | None:
    """The model's capabilities, or None when Ollama can't tell (down, unknown model)."""
    hit = _cache.get(model)
    if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    try:
        shown = await (await hosts.client_for(model)).show(model)
    except (OllamaError, OllamaUnavailable):
        return None
    found = list(shown.get("capabilities") or [])
    remember(model, found)
    return found


def remember(model: str, found: list[str]) -> None:
    _cache[model] = (time.monotonic(), found)
