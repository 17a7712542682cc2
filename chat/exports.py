"""Conversations as files: Markdown to read (the branch on screen) and JSON to keep or
move (every message with its parent, so alternates survive an import; read back by
chat.imports). Read-only; the views check ownership before calling in here.

Images are listed (type and size) but their bytes are not in the file.
"""

from collections import defaultdict
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


def _envelope(conversations: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported": _when(timezone.now()),
        "conversations": conversations,
    }


def _conversation_dict(row: dict, messages: list[dict], images: dict[int, list[dict]]) -> dict:
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
                "images": images.get(message["id"], []),
            }
            for message in messages
        ],
    }


def _export(conversations) -> dict:
    """Three queries, whatever the number of conversations and messages."""
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
        .values("message_id", "content_type", "size")
    ):
        images[attachment["message_id"]].append(
            {"content_type": attachment["content_type"], "size": attachment["size"]}
        )
    return _envelope([_conversation_dict(row, messages[row["id"]], images) for row in rows])


def conversation_json(conversation: Conversation) -> dict:
    """One conversation, in the same envelope as `all_conversations_json`."""
    return _export(Conversation.objects.filter(pk=conversation.pk))


def all_conversations_json(user: AbstractBaseUser) -> dict:
    """Every conversation of `user`, archived ones included."""
    return _export(Conversation.objects.filter(owner=user))
