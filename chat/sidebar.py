"""The conversation list, one page at a time, grouped by day. Read-only.

Pages are cut by a keyset cursor on the list's order (pinned, updated, id), never by
OFFSET: page 200 of 10,000 conversations costs what page 1 costs, one query on the
`conversation_sidebar` index, and a conversation that moves up between two pages is
neither skipped nor shown twice. The cursor is signed, so it is opaque (no internal ids
to read) and can't be forged; it only ever applies to the requesting user's rows anyway.
"""

from dataclasses import dataclass, field
from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db.models import Q
from django.utils import timezone
from django.utils.dateformat import format as format_date

from chat.models import Conversation

PAGE_SIZE = 50
_SALT = "chat.sidebar.cursor"
FIELDS = ("id", "uuid", "title", "title_source", "pinned", "archived", "updated")


class BadCursor(Exception):
    pass


@dataclass
class Group:
    key: str  # stable across pages: the page after continues a group by its key
    label: str
    items: list[Conversation] = field(default_factory=list)


@dataclass
class SidebarPage:
    groups: list[Group]
    next_cursor: str | None
    archived: bool


def make_cursor(conversation: Conversation) -> str:
    return signing.dumps(
        [int(conversation.pinned), conversation.updated.isoformat(), conversation.id],
        salt=_SALT,
        compress=True,
    )


def _read_cursor(cursor: str) -> tuple[bool, datetime, int]:
    try:
        pinned, updated, id_ = signing.loads(cursor, salt=_SALT)
        return bool(pinned), datetime.fromisoformat(updated), int(id_)
    except (signing.BadSignature, ValueError, TypeError):
        raise BadCursor from None


def group_of(conversation: Conversation, today: date) -> tuple[str, str]:
    """(key, label): Pinned, Today, Yesterday, Previous 7 days, Previous 30 days, then
    one group per month, in the server's TIME_ZONE."""
    if conversation.pinned and not conversation.archived:
        return "pinned", "Pinned"
    day = timezone.localdate(conversation.updated)
    age = (today - day).days
    if age <= 0:
        return "today", "Today"
    if age == 1:
        return "yesterday", "Yesterday"
    if age < 7:
        return "week", "Previous 7 days"
    if age < 30:
        return "month", "Previous 30 days"
    return f"{day:%Y-%m}", format_date(day, "F Y")


def sidebar_page(
    user: AbstractBaseUser, *, archived: bool = False, before: str | None = None
) -> SidebarPage:
    """One page of the user's conversations (one query). `before` is the cursor the
    previous page gave; BadCursor if it was tampered with."""
    rows = Conversation.objects.filter(owner=user, archived=archived)
    if before:
        pinned, updated, id_ = _read_cursor(before)
        rows = rows.filter(
            Q(pinned__lt=pinned)
            | Q(pinned=pinned, updated__lt=updated)
            | Q(pinned=pinned, updated=updated, id__lt=id_)
        )
    rows = list(rows.order_by("-pinned", "-updated", "-id").only(*FIELDS)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    today = timezone.localdate()
    groups: list[Group] = []
    for conversation in rows:
        key, label = group_of(conversation, today)
        if not groups or groups[-1].key != key:
            groups.append(Group(key, label))
        groups[-1].items.append(conversation)
    return SidebarPage(groups, make_cursor(rows[-1]) if more else None, archived)
