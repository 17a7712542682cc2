"""Frames of the chat socket (documented in docs/websocket.md): parsing what browsers
send, the shapes of what the server sends that are built outside the relay, and the
group every socket on a conversation joins.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings

from chat import context_window, text
from chat.models import Message
from ollama_layer.names import is_valid_model_name
from relay import live, notes


def group_name(conversation_uuid) -> str:
    """The channel group of a conversation: its sockets, its answers' frames."""
    return live.group_name("conversation", conversation_uuid)


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
    images: list[str]


@dataclass
class Regenerate:
    message_id: str
    model: str


@dataclass
class Edit:
    message_id: str
    content: str
    model: str
    client_id: str


@dataclass
class Continue:
    message_id: str


@dataclass
class Stop:
    pass


@dataclass
class Sync:
    message_id: str


ClientFrame = Send | Regenerate | Edit | Continue | Stop | Sync


def _client_id(frame: dict) -> str:
    """The page's token for a send, echoed back: one it could not have made (not text,
    control characters, a lone surrogate that could not be sent back) is dropped."""
    value = frame.get("client_id", "")
    if not isinstance(value, str):
        return ""
    value = value[:64]
    return value if text.clean_line(value) == value else ""


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _message_id(frame: dict) -> str:
    # A uuid, checked here: a lookup with anything else fails in the database layer,
    # and the value is echoed back in `sync` errors.
    value = frame.get("id")
    if not isinstance(value, str) or len(value) > 64 or not _is_uuid(value):
        raise ProtocolError("invalid", f"{frame['type']} needs a message id.")
    return value


def _content(frame: dict, client_id: str, allow_empty: bool = False) -> str:
    content = frame.get("content", "")
    if not isinstance(content, str) or (not content.strip() and not allow_empty):
        raise ProtocolError("invalid", "The message is empty.", client_id)
    found = text.problem(content)
    if found:
        raise ProtocolError("invalid", f"The message {found}; remove it and send again.", client_id)
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise ProtocolError(
            "too_large",
            f"The message is too long ({len(content):,} characters; "
            f"the limit is {settings.MAX_MESSAGE_CHARS:,}).",
            client_id,
        )
    return content


def _model(frame: dict, client_id: str) -> str:
    model = frame.get("model")
    if not isinstance(model, str) or not is_valid_model_name(model):
        raise ProtocolError("invalid", "Pick a model before sending.", client_id)
    return model


def parse(data: str | None, binary: bytes | None) -> ClientFrame:
    """Turn one websocket frame into a client frame, or raise ProtocolError: `bad_frame`
    for anything that is not a JSON object of a known type (nested deeper than
    text.JSON_MAX_DEPTH included), `too_large`, or `invalid` naming the field."""
    if binary is not None or data is None:
        raise ProtocolError("bad_frame", "Binary frames are not accepted; send JSON text.")
    if len(data.encode("utf-8", "surrogatepass")) > settings.MAX_FRAME_BYTES:
        raise ProtocolError("too_large", "That frame is too large.")
    try:
        # Strings are checked field by field below, to answer with the send's client_id.
        frame = text.loads_json(data, strings=False)
    except text.BadText as exc:
        raise ProtocolError("bad_frame", f"That frame {exc.message}.") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_frame", "A frame must be a JSON object.")
    kind = frame.get("type")
    if kind == "send":
        client_id = _client_id(frame)
        images = frame.get("images", [])
        if not isinstance(images, list) or not all(_is_uuid(i) for i in images):
            raise ProtocolError("invalid", "images must be a list of attachment ids.", client_id)
        if len(images) > settings.MAX_IMAGES_PER_MESSAGE:
            raise ProtocolError(
                "too_large",
                f"At most {settings.MAX_IMAGES_PER_MESSAGE} images go with one message.",
                client_id,
            )
        content = _content(frame, client_id, allow_empty=bool(images))
        return Send(content, _model(frame, client_id), client_id, images)
    if kind == "edit":
        client_id = _client_id(frame)
        content = _content(frame, client_id)
        return Edit(_message_id(frame), content, _model(frame, client_id), client_id)
    if kind == "regenerate":
        return Regenerate(_message_id(frame), _model(frame, ""))
    if kind == "continue":
        return Continue(_message_id(frame))
    if kind == "stop":
        return Stop()
    if kind == "sync":
        return Sync(_message_id(frame))
    raise ProtocolError("bad_frame", "Unknown frame type.")


def error_frame(code: str, message: str, client_id: str = "") -> dict:
    frame = {"type": "error", "code": code, "message": message}
    if client_id:
        frame["client_id"] = client_id
    return frame


def message_payload(message: Message) -> dict:
    """A saved message as the page's script renders it."""
    payload = {
        "id": str(message.uuid),
        "parent": str(message.parent.uuid) if message.parent_id else None,
        "role": message.role,
        "model": message.model,
        "status": message.status,
        "content": message.content,
        "thinking": message.thinking,
        "error": message.error,
        "stats": message.stats,
        "notes": answer_notes(message.stats),
        "created": message.created.isoformat(),
    }
    if hasattr(message, "alternate_count"):
        payload["alternates"] = alternates_payload(message)
    images = getattr(message, "images", None)
    if images is not None:
        payload["images"] = [str(image.uuid) for image in images]
    return payload


def answer_notes(stats: dict | None) -> list[str]:
    """Sentences shown under a finished answer, in words (the page adds no wording of
    its own): that the conversation overflowed the model's context window, and each
    time the answer went on on another server."""
    note = context_window.overflow_note(stats)
    return ([note] if note else []) + notes.failover_notes(stats)


def alternates_payload(message: Message) -> dict:
    return {
        "index": message.alternate_index,
        "count": message.alternate_count,
        "previous": str(message.previous_alternate) if message.previous_alternate else None,
        "next": str(message.next_alternate) if message.next_alternate else None,
    }
