"""Ollama's rules for model names (types/model/name.go in Ollama's source): which names
it accepts, checked before any request, and which names mean the same model."""

import re

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")


def is_valid_model_name(name: str) -> bool:
    """Ollama's own rules for `[host/][namespace/]model[:tag]`, checked before any request."""
    if not isinstance(name, str) or not name or len(name) > 600:
        return False
    rest = name
    if rest.startswith(("http://", "https://")):
        rest = rest.split("://", 1)[1]
    tag = None
    colon, slash = rest.rfind(":"), rest.rfind("/")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _PART.fullmatch(tag):
            return False
    parts = rest.split("/")
    if len(parts) > 3:
        return False
    model = parts[-1]
    if not _PART.fullmatch(model):
        return False
    if len(parts) >= 2 and not _NAMESPACE.fullmatch(parts[-2]):
        return False
    if len(parts) == 3 and not _HOST.fullmatch(parts[0]):
        return False
    return True


def normalise(model: str) -> str:
    """The name under which Ollama looks `model` up: its lookup is case-insensitive and
    `llama3.2` means `llama3.2:latest` ("Llama3.2" -> "llama3.2:latest")."""
    name = model.lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
