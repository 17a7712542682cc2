"""Which Ollama server the models pages manage, and its failures in words."""

from django.conf import settings

from chat.ollama import OllamaClient, OllamaError, OllamaUnavailable


def url() -> str:
    """OLLAMA_URL, or with several hosts (OLLAMA_URLS) the first of them: these pages
    manage one server (see docs/models-admin.md)."""
    return (_hosts() or [settings.OLLAMA_URL])[0]


def other_hosts() -> int:
    """How many more hosts are configured than these pages manage."""
    return max(0, len(_hosts()) - 1)


def _hosts() -> list[str]:
    return list(getattr(settings, "OLLAMA_URLS", None) or [])


def client() -> OllamaClient:
    return OllamaClient(url())


def describe(exc: Exception) -> str:
    """Ollama's failure in words a staff member can act on, keeping Ollama's message."""
    if isinstance(exc, OllamaUnavailable):
        return f"{exc}. Check that Ollama is running, then try again."
    if isinstance(exc, OllamaError):
        if exc.status == 503:
            return f"Ollama is busy right now; try again shortly (Ollama said: {exc.message})."
        return f"Ollama said: {exc.message}"
    return "Something went wrong on the server."
