"""Frames of the models socket (documented in docs/models-admin.md) and the one group
every staff page listens on."""

import json

from models_admin.models import Pull

GROUP = "models"
# The consumer's handler for group events (`models.frame` -> `models_frame`).
EVENT = "models.frame"


def encode(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def event(frame: dict) -> dict:
    """A channel-layer event carrying a frame encoded once, whatever the number of pages."""
    return {"type": EVENT, "text": encode(frame)}


def local_event(host_url: str) -> dict:
    """The installed models of this host changed: pages showing it fetch the list again."""
    return event({"type": "local", "host": host_url})


def pull_payload(pull: Pull, *, speed: float | None = None, eta: float | None = None) -> dict:
    """A pull as the page's script shows it. `speed` (bytes/s) and `eta` (seconds) are
    only known to the task doing the pull; a row read from the database has neither.
    `host` is the address without credentials (the row holds no other)."""
    user = pull.requested_by
    return {
        "id": str(pull.uuid),
        "model": pull.model,
        "host": pull.host,
        "status": pull.status,
        "detail": pull.detail,
        "completed": pull.completed,
        "total": pull.total,
        # What the bar shows (0..1): never lower than before, 1 only once done.
        "fraction": pull.fraction,
        "speed": speed,
        "eta": eta,
        "error": pull.error,
        "by": user.get_username() if user is not None else "",
        "started": pull.started.isoformat() if pull.started else None,
        "finished": pull.finished.isoformat() if pull.finished else None,
    }
