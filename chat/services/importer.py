"""Saving an imported file (checked by chat.imports) as new conversations, all or none.

Rows are written with one `executemany` per statement instead of the ORM's bulk_create and
bulk_update: a 20 MB file holds tens of thousands of messages, and the ORM's per-row work
(and bulk_update's CASE expressions) took most of a minute, holding SQLite's write lock
the whole time. Values still go through each field's own preparation, and fields the file
does not set take their model defaults.
"""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from chat.imports import ImportedConversation
from chat.models import Conversation, Message

BATCH = 500


def import_conversations(user: AbstractBaseUser, imported: list[ImportedConversation]) -> int:
    """Create the conversations for `user` with new ids everywhere (the file names no id,
    owner or file); return how many. Queries grow with batches of BATCH rows, not rows."""
    now = timezone.now()
    conversations: list[dict] = []
    messages: list[tuple[dict, uuid.UUID]] = []  # (row, its conversation's uuid)
    parents: list[tuple[uuid.UUID, uuid.UUID]] = []  # (message, parent)
    leaves: list[tuple[uuid.UUID, uuid.UUID]] = []  # (conversation, current leaf)
    for item in imported:
        updated = min(item.updated or now, now)
        row = {
            "uuid": uuid.uuid4(),
            "owner_id": user.pk,
            "title": item.title,
            "title_source": item.title_source,
            "model": item.model,
            "pinned": item.pinned and not item.archived,  # as set_archived does
            "archived": item.archived,
            "created": min(item.created or updated, updated),
            "updated": updated,
            **item.settings,
        }
        conversations.append(row)
        refs = {message.ref: uuid.uuid4() for message in item.messages}
        for message in item.messages:
            fields = {
                "uuid": refs[message.ref],
                "role": message.role,
                "content": message.content,
                "thinking": message.thinking,
                "model": message.model,
                "status": message.status,
                "error": message.error,
                "stats": message.stats,
                "created": min(message.created or now, now),
            }
            messages.append((fields, row["uuid"]))
            if message.parent:
                parents.append((refs[message.ref], refs[message.parent]))
        if item.current_leaf:
            leaves.append((row["uuid"], refs[item.current_leaf]))

    with transaction.atomic():
        _insert(Conversation, conversations)
        conversation_ids = _ids(Conversation, [row["uuid"] for row in conversations])
        for row, conversation_uuid in messages:
            row["conversation_id"] = conversation_ids[conversation_uuid]
        _insert(Message, [row for row, _ in messages])
        message_ids = _ids(Message, [row["uuid"] for row, _ in messages])
        _update(Message, "parent", [(message_ids[p], message_ids[m]) for m, p in parents])
        _update(
            Conversation,
            "current_leaf",
            [(message_ids[leaf], conversation_ids[c]) for c, leaf in leaves],
        )
    return len(conversations)


def _insert(model: type[models.Model], rows: list[dict]) -> None:
    """INSERT rows given as {attname: value}; every other field takes its default."""
    if not rows:
        return
    connection = transaction.get_connection()  # once: the proxy costs a lookup per use
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(model._meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    params = [
        [
            field.get_db_prep_save(
                row[field.attname] if field.attname in row else field.get_default(), connection
            )
            for field in fields
        ]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _ids(model: type[models.Model], uuids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    found: dict[uuid.UUID, int] = {}
    for start in range(0, len(uuids), BATCH):  # SQLite caps the parameters of one query
        chunk = uuids[start : start + BATCH]
        found.update(model.objects.filter(uuid__in=chunk).values_list("uuid", "id"))
    return found


def _update(model: type[models.Model], name: str, rows: list[tuple]) -> None:
    """Set one column of many rows: (value, pk) pairs, one executemany."""
    if not rows:
        return
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    field = model._meta.get_field(name)
    table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
    sql = f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(field.get_db_prep_save(v, connection), pk) for v, pk in rows])
