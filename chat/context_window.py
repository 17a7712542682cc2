"""What the page says of an answer's context window (saved in its stats by the relay,
looked up by `ollama_layer.context_window`): whether the conversation overflowed it, and
how full it is.
"""


def _positive(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


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
