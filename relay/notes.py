"""Sentences shown under a finished answer about how the relay wrote it: each time it
went on on another server (`stats["failover"]`, recorded by `relay.failover`)."""

from ollama_layer.failures import clause

# Whole sentences with named placeholders, ready for gettext (`_(TEXT) % {...}`).
FAILOVER_NOTE = "Continued on another server after %(chars)s characters: %(reason)s."
FAILOVER_NOTE_THINKING = "Continued on another server while reasoning: %(reason)s."


def failover_notes(stats: dict | None) -> list[str]:
    """One sentence per time the answer went on on another host (`stats["failover"]`,
    relay/failover.py), shown under it; [] when it never did."""
    notes = []
    for move in (stats or {}).get("failover") or []:
        if not isinstance(move, dict):
            continue
        reason = clause(str(move.get("reason") or "the server failed")).rstrip(".")
        chars = move.get("at")
        if isinstance(chars, int) and chars > 0:
            notes.append(FAILOVER_NOTE % {"chars": f"{chars:,}", "reason": reason})
        else:
            notes.append(FAILOVER_NOTE_THINKING % {"reason": reason})
    return notes
