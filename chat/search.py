"""Searching a user's conversations: titles and message text, case-insensitive, with the
matches highlighted. Read-only; every query is filtered by owner.

`icontains` is portable (LIKE on SQLite, where case folding covers ASCII letters only;
UPPER(...) LIKE UPPER(...) on PostgreSQL). The snippet around a match is cut by the
database, so a long answer is never sent whole to Python just to show 200 characters of it.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Value, Window
from django.db.models.functions import Greatest, Length, RowNumber, StrIndex, Substr, Upper
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from chat.models import Conversation, Message
from chat.text import clean_line

MAX_QUERY_CHARS = 200
MAX_HITS = 50
PER_CONVERSATION = 3  # message hits shown per conversation; the others are one click away
BEFORE = 60  # characters of context before the match
SNIPPET_CHARS = 200


@dataclass
class MessageHit:
    uuid: str
    role: str
    snippet: SafeString


@dataclass
class ConversationHits:
    uuid: str
    title: str
    title_html: SafeString  # the title, escaped, with its matches in <mark>
    archived: bool
    updated: datetime
    title_matches: bool = False
    messages: list[MessageHit] = field(default_factory=list)


def normalize(query: str) -> str:
    """One line of at most MAX_QUERY_CHARS, cleaned as titles are (chat.text.clean_line):
    a NUL would make PostgreSQL fail the query, and no saved text holds one."""
    return clean_line(str(query or ""))[:MAX_QUERY_CHARS]


def highlight(text: str, query: str) -> SafeString:
    """`text` escaped, with every case-insensitive occurrence of `query` in <mark>."""
    parts, last = [], 0
    if query:
        for match in re.finditer(re.escape(query), text, re.IGNORECASE):
            parts.append(escape(text[last : match.start()]))
            parts.append(format_html("<mark>{}</mark>", match.group()))
            last = match.end()
    parts.append(escape(text[last:]))
    return format_html_join("", "{}", ((part,) for part in parts))


def _snippet(text: str, start: int, length: int, query: str) -> SafeString:
    text = " ".join(text.split())
    return highlight(
        ("…" if start > 1 else "") + text + ("…" if start + SNIPPET_CHARS <= length else ""),
        query,
    )


def search(user: AbstractBaseUser, query: str) -> list[ConversationHits]:
    """The user's conversations matching `query`, most recent activity first, each with up
    to PER_CONVERSATION matching messages; at most MAX_HITS hits in all. Two queries."""
    query = normalize(query)
    if not query or not user.is_authenticated:
        return []
    position = StrIndex(Upper("content"), Upper(Value(query)))
    start = Greatest(position - BEFORE, 1)
    messages = (
        Message.objects.filter(conversation__owner=user, content__icontains=query)
        .annotate(
            rank=Window(RowNumber(), partition_by=F("conversation_id"), order_by=F("id").asc()),
            start=start,
            length=Length("content"),
            snippet=Substr("content", start, SNIPPET_CHARS),
        )
        .filter(rank__lte=PER_CONVERSATION)
        .order_by("-conversation__updated", "-conversation_id", "id")
        .values(
            "uuid",
            "role",
            "start",
            "length",
            "snippet",
            "conversation__uuid",
            "conversation__title",
            "conversation__archived",
            "conversation__updated",
        )[:MAX_HITS]
    )
    titled = (
        Conversation.objects.filter(owner=user, title__icontains=query)
        .order_by("-updated", "-id")
        .values("uuid", "title", "archived", "updated")[:MAX_HITS]
    )
    found: dict[str, ConversationHits] = {}

    def entry(uuid, title, archived, updated) -> ConversationHits:
        key = str(uuid)
        if key not in found:
            found[key] = ConversationHits(
                key, title, highlight(title or "New chat", query), archived, updated
            )
        return found[key]

    for row in titled:
        entry(row["uuid"], row["title"], row["archived"], row["updated"]).title_matches = True
    for row in messages:
        hits = entry(
            row["conversation__uuid"],
            row["conversation__title"],
            row["conversation__archived"],
            row["conversation__updated"],
        )
        hits.messages.append(
            MessageHit(
                str(row["uuid"]),
                row["role"],
                _snippet(row["snippet"] or "", row["start"] or 1, row["length"] or 0, query),
            )
        )
    ordered = sorted(found.values(), key=lambda hits: hits.updated, reverse=True)
    # Title-only hits count one each; keep the total near MAX_HITS.
    kept, total = [], 0
    for hits in ordered:
        if total >= MAX_HITS:
            break
        kept.append(hits)
        total += max(1, len(hits.messages))
    return kept
