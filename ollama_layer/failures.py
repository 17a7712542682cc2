"""Why an answer failed, in words the person who asked can act on: Ollama's failures,
for any surface that streams from it (the chat, the relay's failover notes).

Each failure is worded for what happened, not for where it was caught (shared/
ollama-api.md §4): Ollama *refused* a request only when it answered an error status
before the answer began; an `{"error": ...}` line or a connection lost after tokens is
a failure *while answering*; a model whose host is down is *unreachable*, not missing.
Host addresses are internal (and may carry credentials): only staff see them, without
credentials (`OllamaUnavailable.detailed`).
"""

from ollama_layer import hosts
from ollama_layer.client import OllamaError, OllamaUnavailable
from ollama_layer.names import normalise


class ModelUnreachable(OllamaUnavailable):
    """The model is on a host that is down, or may be: it is out of reach for now, not
    missing. `hosts` are those hosts' addresses without credentials (for staff);
    `certain`: their last list of models has it (else Ollama said "not found" where it
    was asked, and a host whose models were never read is down)."""

    def __init__(self, model: str, hosts: list[str], *, certain: bool):
        where = ", ".join(hosts)
        if certain:
            message = f"The Ollama server that has “{model}” is not reachable right now"
            detailed = f"The Ollama server that has “{model}” ({where}) is not reachable right now"
        else:
            message = (
                f"“{model}” is not on the Ollama servers that can be reached right now, and "
                "one that may have it is not reachable"
            )
            detailed = (
                f"“{model}” is not on the Ollama servers that can be reached right now, "
                f"and {where}, which may have it, is not reachable"
            )
        super().__init__(message, host=where, detailed=detailed)


class StillBusy(OllamaError):
    """Every host stayed busy (503) for as long as an answer may wait in line
    (QUEUE_TIMEOUT_SECONDS), and it never reached the front to ask one itself."""

    def __init__(self, seconds: float):
        super().__init__(503, f"every Ollama server stayed busy for {seconds:g} s")


def out_of_reach(
    model: str, exc: Exception, tried: list[hosts.Host] | None = None
) -> ModelUnreachable | None:
    """With several hosts, the failure to report instead of `exc` when the model is out
    of reach rather than missing: every host `tried` had it and none could be reached,
    or Ollama said "not found" (`exc` a 404) while a host whose models are unknown is
    down. None when `exc` says it right (one host, or nothing is down)."""
    pool = hosts.pool()
    if len(pool.hosts) == 1:
        return None
    name = normalise(model)
    if tried and all(name in host.models for host in tried):
        found = ModelUnreachable(model, [host.label for host in tried], certain=True)
    elif isinstance(exc, OllamaError) and (down := pool.unknown_down()):
        found = ModelUnreachable(model, [host.label for host in down], certain=False)
    else:
        return None
    found.__cause__ = exc
    return found


def explain(exc: Exception, model: str, *, answering: bool = False, staff: bool = False) -> str:
    """The failure `exc` of an answer with `model`, as shown in the message and saved.

    `answering`: Ollama had already sent part of the answer (a token, or any chunk).
    `staff`: the reader is staff, who may see which host failed (without credentials).
    Ollama's own message is kept wherever it says something.
    """
    if isinstance(exc, OllamaUnavailable):
        text = exc.detailed if staff else str(exc)
        if answering:
            return (
                f"Ollama failed while answering: {clause(text)}. Continue or regenerate the answer."
            )
        if isinstance(exc, ModelUnreachable):
            return f"{text}. Try again shortly, or pick another model."
        return f"{text}. Check that Ollama is running, then continue or try again."
    if isinstance(exc, OllamaError):
        if answering or exc.status is None:
            # An error line: Ollama had begun (its status was already 200; §4).
            return (
                f"Ollama failed while answering: {exc.message.rstrip('.')}. "
                "Continue or regenerate the answer."
            )
        if exc.status == 404:
            return (
                f"The model “{model}” is not installed on the Ollama server "
                f"(Ollama said: {exc.message}). Pick another model or ask an administrator "
                "to pull it."
            )
        if isinstance(exc, StillBusy):
            return f"Ollama is busy right now ({exc.message}). Try again shortly."
        if exc.status == 503:
            return f"Ollama is busy right now (Ollama said: {exc.message}). Try again shortly."
        if exc.status < 500:
            return f"Ollama refused the request: {exc.message}"
        return f"Ollama failed before answering: {exc.message}"
    return "Something went wrong on the server while writing this answer."


def clause(text: str) -> str:
    """A sentence to follow a colon: "The connection ..." -> "the connection ..."."""
    return text if text.startswith("Ollama") else text[:1].lower() + text[1:]
