"""The row an answer is written into, as the relay sees it: a protocol each streaming
surface implements for its own table (the chat: `chat.answers.MessageTarget` for a
`Message`). The relay never touches the database itself; it calls these.

Statuses are the strings of `Status` below; a surface's own choices (the chat's
`Message.Status`) use the same words.
"""

from enum import StrEnum
from typing import Protocol


class Status(StrEnum):
    """Where an answer is: `streaming` until exactly one of the four final states."""

    STREAMING = "streaming"
    COMPLETE = "complete"  # Ollama sent its final chunk
    STOPPED = "stopped"  # someone asked to stop it
    FAILED = "failed"  # Ollama refused, failed or broke off (`error` says why, in words)
    INTERRUPTED = "interrupted"  # the process stopped (or died) while writing it


# The error of an answer its process stopped (or died) writing.
INTERRUPTED_ERROR = "The server stopped while this answer was being written."

# Ollama's numbers kept from the final chunk, the same for /api/chat and /api/generate.
STAT_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "done_reason",
)


class Target(Protocol):
    """One answer's row. `id`, `model`, `content` and `thinking` are read once, when the
    answer starts (`content`/`thinking`: the text it already has when it is continued,
    else ""); the methods are called from the answer's task on the event loop."""

    id: str  # public id, in every frame (a UUID as text)
    model: str
    content: str
    thinking: str

    def fields(self) -> dict:
        """What the `start` and `snapshot` frames say of the row besides its live state
        (status, text, seq), e.g. {"id": ..., "role": "assistant", "model": ...}."""

    async def checkpoint(self, content: str, thinking: str) -> bool:
        """Save the text so far; also the heartbeat that shows the answer's process is
        alive (called at least every STALE_SECONDS / 4, at most every
        CHECKPOINT_SECONDS). False when the row no longer streams: another process took
        the answer for dead and ended it, and the relay stops writing it. May raise (the
        database is away): the relay tries again at the next checkpoint."""

    async def finish(
        self, status: Status, content: str, thinking: str, stats: dict, error: str
    ) -> None:
        """Record the one final state, with Ollama's stats (`STAT_FIELDS`,
        plus `thinking_ms`, `wall_ms`, `context_window`, `failover`) and the error in
        words ("" unless failed or interrupted). Only a row still streaming changes. May
        raise: the relay tries a few times over some seconds."""

    def notes(self, stats: dict) -> list[str]:
        """Sentences shown under the finished answer (the `done` frame's `notes`)."""

    def finished(self, status: Status) -> None:
        """After the `done` frame went out (the chat names a new conversation). Must
        return at once: start a task for anything slow."""
