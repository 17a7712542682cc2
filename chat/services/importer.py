"""Saving an imported file (checked by chat.imports) as new conversations, all or none.

Rows are written with one `executemany` per statement instead of the ORM's bulk_create and
bulk_update: a 20 MB file holds tens of thousands of messages, and the ORM's per-row work
(and bulk_update's CASE expressions) took most of a minute, holding SQLite's write lock
the whole time. Values still go through each field's own preparation, and fields the file
does not set take their model defaults.

Images were checked and cleaned as uploads are (chat.images.prepare_image) while the file
was read; `store_image` saves each, a query and a file each: they are few next to
messages.
"""

import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from chat.import_images import ImportedImage
from chat.imports import ImportedConversation
from chat.models import Attachment, Conversation, Message
from chat.services.attachments import store_image

BATCH = 500


@dataclass
class ImportResult:
    imported: int  # conversations created
    already_there: int  # skipped: imported before, or the exported conversation itself
    images: int  # images restored
    images_missing: int  # listed in the file without their bytes (older exports)


def _already_there(user: AbstractBaseUser) -> set[str]:
    """Exported ids that name a conversation `user` has: one imported from it, or the
    very conversation that was exported (its uuid). Only the user's own: another user's
    file never learns what exists elsewhere."""
    found: set[str] = set()
    for uuid_, source in Conversation.objects.filter(owner=user).values_list(
        "uuid", "imported_from"
    ):
        found.add(str(uuid_))
        if source:
            found.add(source)
    return found


@transaction.atomic
def import_conversations(
    user: AbstractBaseUser, imported: list[ImportedConversation]
) -> ImportResult:
    """Create the conversations for `user` with new ids everywhere (the file names no id,
    owner or file), skipping those already there (by the exported conversation id, see
    `_already_there`; a file holding one twice gets it once). Queries grow with batches
    of BATCH rows, not rows, plus a few per image. Raises ImportRefused when an image is
    refused by the upload checks; nothing is then saved, files included."""
    # Imports by the same user wait for each other here, so two of one file can't both
    # decide a conversation is new (PostgreSQL; SQLite's IMMEDIATE transactions
    # serialise all writers). The unique constraint is the last word either way.
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
    seen = _already_there(user)
    fresh = []
    for item in imported:
        if item.source and item.source in seen:
            continue
        seen.add(item.source)
        fresh.append(item)
    saved_files: list[str] = []
    try:
        images = _save(user, fresh, saved_files)
    except BaseException:
        # The rows roll back with the transaction; the files must go by hand.
        storage = Attachment._meta.get_field("file").storage
        for name in saved_files:
            storage.delete(name)
        raise
    return ImportResult(
        imported=len(fresh),
        already_there=len(imported) - len(fresh),
        images=images,
        images_missing=sum(item.images_missing for item in fresh),
    )


def _save(user: AbstractBaseUser, imported: list[ImportedConversation], saved_files) -> int:
    now = timezone.now()
    conversations: list[dict] = []
    messages: list[tuple[dict, uuid.UUID]] = []  # (row, its conversation's uuid)
    parents: list[tuple[uuid.UUID, uuid.UUID]] = []  # (message, parent)
    leaves: list[tuple[uuid.UUID, uuid.UUID]] = []  # (conversation, current leaf)
    images: list[tuple[uuid.UUID, uuid.UUID, ImportedImage]] = []  # (conversation, message, image)
    for item in imported:
        updated = min(item.updated or now, now)
        row = {
            "uuid": uuid.uuid4(),
            "owner_id": user.pk,
            "imported_from": item.source,
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
            images += [(row["uuid"], refs[message.ref], image) for image in message.images]
        if item.current_leaf:
            leaves.append((row["uuid"], refs[item.current_leaf]))

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
    for conversation_uuid, message_uuid, imported_image in images:
        attachment = store_image(
            conversation_ids[conversation_uuid], imported_image.image, message_ids[message_uuid]
        )
        saved_files.append(attachment.file.name)
    return len(images)


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
