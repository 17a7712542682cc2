"""Frames of the chat socket (documented in docs/websocket.md): parsing what browsers
send, and the shapes of what the server sends that are built outside the generation.
"""

import json
from dataclasses import dataclass

from django.conf import settings

from chat.models import Message
from chat.ollama import is_valid_model_name


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, client_id: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id  # so the page knows which send failed


@dataclass
class Send:
    content: str
    model: str
    client_id: str


@dataclass
class Stop:
    pass


@dataclass
class Sync:
    message_id: str


ClientFrame = Send | Stop | Sync


def _client_id(frame: dict) -> str:
    value = frame.get("client_id", "")
    return value[:64] if isinstance(value, str) else ""


def parse(text: str | None, binary: bytes | None) -> ClientFrame:
    """Turn one websocket frame into a client frame, or raise ProtocolError."""
    if binary is not None or text is None:
        raise ProtocolError("bad_frame", "Binary frames are not accepted; send JSON text.")
    if len(text.encode()) > settings.MAX_FRAME_BYTES:
        raise ProtocolError("too_large", "That frame is too large.")
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_frame", "That frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_frame", "A frame must be a JSON object.")
    kind = frame.get("type")
    if kind == "send":
        content, model = frame.get("content"), frame.get("model")
        client_id = _client_id(frame)
        if not isinstance(content, str) or not content.strip():
            raise ProtocolError("invalid", "The message is empty.", client_id)
        if len(content) > settings.MAX_MESSAGE_CHARS:
            raise ProtocolError(
                "too_large",
                f"The message is too long ({len(content):,} characters; "
                f"the limit is {settings.MAX_MESSAGE_CHARS:,}).",
                client_id,
            )
        if not isinstance(model, str) or not is_valid_model_name(model):
            raise ProtocolError("invalid", "Pick a model before sending.", client_id)
        return Send(content=content, model=model, client_id=client_id)
    if kind == "stop":
        return Stop()
    if kind == "sync":
        message_id = frame.get("id")
        if not isinstance(message_id, str) or len(message_id) > 64:
            raise ProtocolError("invalid", "sync needs a message id.")
        return Sync(message_id=message_id)
    raise ProtocolError("bad_frame", "Unknown frame type.")


def error_frame(code: str, message: str, client_id: str = "") -> dict:
    frame = {"type": "error", "code": code, "message": message}
    if client_id:
        frame["client_id"] = client_id
    return frame


def message_payload(message: Message) -> dict:
    """A saved message as the page's script renders it."""
    return {
        "id": str(message.uuid),
        "role": message.role,
        "model": message.model,
        "status": message.status,
        "content": message.content,
        "thinking": message.thinking,
        "error": message.error,
        "stats": message.stats,
        "created": message.created.isoformat(),
    }
