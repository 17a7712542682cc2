"""The conversation list: rename, pin, archive, delete, the model's title, and opening a
conversation at one message. (Importing is in chat/services/importer.py.)

Events (the `title` frame, stopping a live answer) go out after the commit, so that no
tab hears of a change that was rolled back.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404

from chat import protocol, text
from chat.models import Attachment, Conversation, Message
from chat.services.branches import branch, select_alternate
from chat.services.conversations import get_conversation_for_user
from relay import live

TitleSource = Conversation.TitleSource
TITLE_MAX = Conversation._meta.get_field("title").max_length


class HistoryRefused(Exception):
    """A request about the list that cannot be done; `message` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _publish_title(conversation: Conversation) -> None:
    frame = live.encode({"type": "title", "title": conversation.title})
    group = protocol.group_name(conversation.uuid)
    transaction.on_commit(
        lambda: async_to_sync(get_channel_layer().group_send)(
            group, {"type": "chat.frame", "text": frame}
        )
    )


@transaction.atomic
def rename_conversation(user: AbstractBaseUser, conversation_uuid, title: str) -> Conversation:
    """The owner's title, which the automatic title never overwrites. Cleaned like every
    title (chat.text.clean_line: one line, no control or bidi override characters)."""
    title = text.clean_line(str(title))
    if not title:
        raise HistoryRefused("A title can't be empty.")
    if len(title) > TITLE_MAX:
        raise HistoryRefused(f"A title is at most {TITLE_MAX} characters.")
    conversation = get_conversation_for_user(user, conversation_uuid)
    conversation.title = title
    conversation.title_source = TitleSource.USER
    # Not `updated`: renaming is no activity, the conversation keeps its place.
    conversation.save(update_fields=["title", "title_source"])
    _publish_title(conversation)
    return conversation


def set_pinned(user: AbstractBaseUser, conversation_uuid, pinned: bool) -> Conversation:
    conversation = get_conversation_for_user(user, conversation_uuid)
    conversation.pinned = bool(pinned)
    conversation.save(update_fields=["pinned"])
    return conversation


def set_archived(user: AbstractBaseUser, conversation_uuid, archived: bool) -> Conversation:
    """Archived conversations leave the list for the archive; they lose their pin, since
    "pinned to the top" means nothing out of the list."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    conversation.archived = bool(archived)
    fields = ["archived"]
    if archived and conversation.pinned:
        conversation.pinned = False
        fields.append("pinned")
    conversation.save(update_fields=fields)
    return conversation


@transaction.atomic
def delete_conversation(user: AbstractBaseUser, conversation_uuid) -> None:
    """The conversation, its messages and its images, files included; an answer being
    written in it is stopped (Ollama stops generating)."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    files = list(
        Attachment.objects.filter(conversation=conversation).values_list("file", flat=True)
    )
    live = list(
        conversation.messages.filter(status=Message.Status.STREAMING)
        .exclude(task_channel="")
        .values_list("task_channel", flat=True)
    )
    conversation.delete()
    storage = Attachment._meta.get_field("file").storage

    def after_commit() -> None:
        # Only once the rows are gone for good: a rollback keeps files that rows name.
        for name in files:
            if name:
                storage.delete(name)
        for channel in live:
            async_to_sync(live.request_stop)(channel)

    transaction.on_commit(after_commit)


def save_model_title(conversation_id: int, title: str) -> bool:
    """The automatic title (chat.titles), only while the title still comes from the first
    message: a rename that got there first wins. True if saved."""
    title = text.clean_line(title)[:TITLE_MAX]
    if not title:
        return False
    return bool(
        Conversation.objects.filter(id=conversation_id, title_source=TitleSource.MESSAGE).update(
            title=title, title_source=TitleSource.MODEL
        )
    )


def open_at_message(user: AbstractBaseUser, conversation_uuid, message_uuid) -> Conversation:
    """Make sure the message is on screen when the conversation opens: when it sits on
    another branch (an earlier alternate), that branch becomes the one shown."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    if any(str(message.uuid) == str(message_uuid) for message in branch(conversation)):
        return conversation
    if not conversation.messages.filter(uuid=message_uuid).exists():
        raise Http404
    return select_alternate(user, conversation_uuid, message_uuid)
