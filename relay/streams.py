"""What the relay streams from Ollama: a request it can send to any host, read deltas
from, and continue on another host when one breaks off (docs/architecture.md, "Adding a
streaming surface").

`ChatStream` is /api/chat's. A surface that streams another endpoint (/api/generate)
writes a class with the same four members (`Stream`) and hands it to
`relay.engine.Answer.start`.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ollama_layer.client import OllamaClient


class Stream(Protocol):
    """One streamed request to Ollama, as the relay uses it."""

    model: str

    @property
    def options(self) -> dict | None:
        """The request's runtime options (num_ctx decides its context window:
        `ollama_layer.context_window.effective`)."""

    def open(self, client: OllamaClient) -> AsyncIterator[dict]:
        """Send the request to the host of `client`; yields Ollama's chunks (NDJSON
        objects). Raises as `OllamaClient` does."""

    def parts(self, chunk: dict) -> tuple[str, str]:
        """(content, thinking) of one chunk: the text it adds ("" for none). Called once
        per chunk: keep it cheap."""

    def resumed(self, content: str, thinking: str) -> "Stream":
        """The same request, made to go on from a partial answer (`content` and its
        reasoning `thinking`, as every tab shows them) on another host."""


def partial_answer(content: str, thinking: str = "") -> list[dict]:
    """The turn that makes Ollama continue a partial answer, to append to a chat's
    messages: the answer as the last (assistant) message, its reasoning apart in
    `thinking`, as every assistant turn goes back (ollama-api.md §1, §7); none when it has
    no text yet. Continue (chat.services) and a failover to another host both send it."""
    if not content and not thinking:
        return []
    turn = {"role": "assistant", "content": content}
    if thinking:
        turn["thinking"] = thinking
    return [turn]


@dataclass
class ChatStream:
    """A streamed /api/chat request: `messages` as Ollama takes them, and `request` the
    body's other fields (`options`, `keep_alive`, `think`, `format`; see
    `OllamaClient.chat_stream`)."""

    model: str
    messages: list[dict]
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict | None:
        return self.request.get("options")

    def open(self, client: OllamaClient) -> AsyncIterator[dict]:
        return client.chat_stream(self.model, self.messages, **self.request)

    @staticmethod
    def parts(chunk: dict) -> tuple[str, str]:
        delta = chunk.get("message") or {}
        return delta.get("content") or "", delta.get("thinking") or ""

    def resumed(self, content: str, thinking: str) -> "ChatStream":
        # A continued answer's messages already end with its partial text: replaced.
        messages = self.messages
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        return ChatStream(self.model, [*messages, *partial_answer(content, thinking)], self.request)
