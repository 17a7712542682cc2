"""Conversations as files: Markdown to read (the branch on screen) and JSON to keep or
move (every message with its parent, so alternates survive an import; read back by
chat.imports). Read-only; the views check ownership before calling in here.

The JSON carries each image's bytes in base64, so that a round trip (export, delete,
import) keeps them. It is written in pieces: rows are read first (three queries), then
the text is produced as it is sent, each image read from storage only when its turn
comes, so a large export never sits whole in memory.
"""

import base64
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.text import slugify

from chat import services
from chat.imports import FORMAT, VERSION
from chat.models import Attachment, Conversation, Message

CONVERSATION_FIELDS = (
    "id",
    "uuid",
    "title",
    "title_source",
    "model",
    "system_prompt",
    "options",
    "keep_alive",
    "think",
    "format",
    "pinned",
    "archived",
    "current_leaf_id",
    "created",
    "updated",
)
MESSAGE_FIELDS = (
    "id",
    "uuid",
    "conversation_id",
    "parent_id",
    "role",
    "content",
    "thinking",
    "model",
    "status",
    "error",
    "stats",
    "created",
)


def filename(conversation: Conversation, extension: str) -> str:
    """A safe download name (ASCII, no quotes) from the title."""
    return f"{slugify(conversation.title)[:60] or 'conversation'}.{extension}"


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Markdown -------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines())


def conversation_markdown(conversation: Conversation) -> str:
    """The conversation as a person reads it: the branch on screen, top to bottom."""
    title = conversation.title or "New chat"
    lines = [
        f"# {title}",
        "",
        f"- Model: {conversation.model}",
        f"- Started: {timezone.localtime(conversation.created):%Y-%m-%d %H:%M %Z}",
        f"- Exported: {timezone.localtime():%Y-%m-%d %H:%M %Z}",
    ]
    if conversation.system_prompt:
        lines += ["", "System prompt:", "", _quote(conversation.system_prompt)]
    for message in services.branch(conversation):
        if message.role == Message.Role.USER:
            author = "You"
        elif message.role == Message.Role.SYSTEM:
            author = "System"
        else:
            author = message.model or "Assistant"
        lines += ["", f"## {author}", ""]
        if message.thinking:
            lines += ["> **Thinking**", ">", _quote(message.thinking), ""]
        lines.append(message.content)
        if message.images:
            count = len(message.images)
            lines += ["", f"*({count} image{'s' if count > 1 else ''} attached)*"]
        if message.status not in (Message.Status.COMPLETE, Message.Status.STREAMING):
            note = message.status + (f": {message.error}" if message.error else "")
            lines += ["", f"*({note})*"]
    return "\n".join(lines).rstrip() + "\n"


# --- JSON -----------------------------------------------------------------------------


# Text is sent in pieces of about this many characters; an image's base64 in pieces of
# 4/3 of IMAGE_READ bytes (a multiple of 3: the pieces join into one valid base64 text).
PIECE_CHARS = 64 * 1024
IMAGE_READ = 3 * 64 * 1024
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _open_object(value: dict) -> str:
    """`value` as JSON without its closing brace, so that more keys can follow."""
    return _dumps(value)[:-1]


def _conversation_dict(row: dict, messages: list[dict]) -> dict:
    """The conversation with its messages; each message's "images" is left out (the
    writer adds it last, with the bytes)."""
    uuids = {message["id"]: str(message["uuid"]) for message in messages}
    return {
        "id": str(row["uuid"]),
        "title": row["title"],
        "title_source": row["title_source"],
        "model": row["model"],
        "system_prompt": row["system_prompt"],
        "options": row["options"] or {},
        "keep_alive": row["keep_alive"],
        "think": row["think"],
        "format": row["format"],
        "pinned": row["pinned"],
        "archived": row["archived"],
        "created": _when(row["created"]),
        "updated": _when(row["updated"]),
        "current_leaf": uuids.get(row["current_leaf_id"]),
        "messages": [
            {
                "id": uuids[message["id"]],
                "parent": uuids.get(message["parent_id"]),
                "role": message["role"],
                "content": message["content"],
                "thinking": message["thinking"],
                "model": message["model"],
                "status": message["status"],
                "error": message["error"],
                "stats": message["stats"] or {},
                "created": _when(message["created"]),
                "_id": message["id"],  # for the writer; not written
            }
            for message in messages
        ],
    }


def _export(conversations) -> Iterator[str]:
    """Three queries, made now (in the caller's thread, which owns the database
    connection), whatever the number of conversations, messages and images; the pieces
    of text come from a generator that reads only image files."""
    rows = list(conversations.order_by("-updated", "-id").values(*CONVERSATION_FIELDS))
    # Subqueries, not lists of ids: SQLite caps the number of query parameters.
    ids = conversations.values("id")
    messages = defaultdict(list)
    for message in (
        Message.objects.filter(conversation_id__in=ids)
        .order_by("conversation_id", "id")
        .values(*MESSAGE_FIELDS)
    ):
        messages[message["conversation_id"]].append(message)
    images = defaultdict(list)
    for attachment in (
        Attachment.objects.filter(conversation_id__in=ids, message__isnull=False)
        .order_by("id")
        .values("message_id", "uuid", "content_type", "size", "file")
    ):
        images[attachment["message_id"]].append(attachment)
    return _pieces(_write(rows, messages, images))


def _write(rows: list[dict], messages: dict, images: dict) -> Iterator[str]:
    """The file's text in small parts, in the order of `_conversation_dict`'s keys, with
    each message's "images" last."""
    head = {"format": FORMAT, "version": VERSION, "exported": _when(timezone.now())}
    yield _open_object(head) + ', "conversations": ['
    for number, row in enumerate(rows):
        conversation = _conversation_dict(row, messages[row["id"]])
        listed = conversation.pop("messages")
        yield (", " if number else "") + _open_object(conversation) + ', "messages": ['
        for index, message in enumerate(listed):
            attached = images.get(message.pop("_id"), [])
            yield (", " if index else "") + _open_object(message) + ', "images": ['
            for position, image in enumerate(attached):
                if position:
                    yield ", "
                yield from _image(image)
            yield "]}"
        yield "]}"
    yield "]}"


def _pieces(parts: Iterator[str]) -> Iterator[str]:
    """Small parts joined into pieces of at least PIECE_CHARS characters: a response
    piece per message would cost more in sending than in writing."""
    pending: list[str] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= PIECE_CHARS:
            yield "".join(pending)
            pending, size = [], 0
    if pending:
        yield "".join(pending)


def _image(image: dict) -> Iterator[str]:
    """One image as a JSON object: name, type, size and its bytes in base64. An image
    whose file is gone is written without "data" (an import says it is missing)."""
    meta = {
        "name": f"{image['uuid']}.{EXTENSIONS.get(image['content_type'], 'bin')}",
        "content_type": image["content_type"],
        "size": image["size"],
    }
    storage = Attachment._meta.get_field("file").storage
    try:
        file = storage.open(image["file"], "rb")
    except OSError:
        yield _dumps(meta)
        return
    with file:
        yield _open_object(meta) + ', "data": "'
        while piece := file.read(IMAGE_READ):
            yield base64.b64encode(piece).decode("ascii")
    yield '"}'


def conversation_json(conversation: Conversation) -> Iterator[str]:
    """One conversation, in the same envelope as `all_conversations_json`, as pieces
    of JSON text (see `_export`)."""
    return _export(Conversation.objects.filter(pk=conversation.pk))


def all_conversations_json(user: AbstractBaseUser) -> Iterator[str]:
    """Every conversation of `user`, archived ones included, as pieces of JSON text."""
    return _export(Conversation.objects.filter(owner=user))
