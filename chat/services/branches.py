"""The branch on screen: regenerated answers and edited questions are siblings in a tree
of messages, and the conversation's `current_leaf` picks the branch that is shown and
sent to Ollama. Everything here loads a conversation's messages in one query, whatever
their number, and walks the tree in memory.
"""

import base64
from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from chat.models import Attachment, Conversation, Message
from chat.services.conversations import get_conversation_for_user


def _tree(conversation: Conversation, fields: tuple[str, ...] | None = None):
    messages = conversation.messages.order_by("id")
    if fields:
        # conversation_id too: Attachment lookups by message read it, and a deferred
        # field costs one query per message.
        messages = messages.only("id", "parent_id", "conversation_id", *fields)
    messages = list(messages)
    children: dict[int | None, list[Message]] = defaultdict(list)
    for message in messages:
        children[message.parent_id].append(message)
    return {message.id: message for message in messages}, children


def _path_to(leaf: Message | None, by_id: dict[int, Message]) -> list[Message]:
    path = []
    while leaf is not None:
        path.append(leaf)
        leaf = by_id.get(leaf.parent_id)
    path.reverse()
    return path


def _latest_descendant(message: Message, children) -> Message:
    while children.get(message.id):
        message = children[message.id][-1]
    return message


def branch(conversation: Conversation) -> list[Message]:
    """The messages on screen, first to last, each annotated for the "< 2/3 >" control
    (`alternate_index`, `alternate_count`, `previous_alternate`, `next_alternate`)."""
    by_id, children = _tree(conversation)
    leaf = by_id.get(conversation.current_leaf_id)
    if leaf is None and children.get(None):
        leaf = _latest_descendant(children[None][-1], children)
    path = _path_to(leaf, by_id)
    for message in path:
        siblings = children[message.parent_id]
        index = siblings.index(message)
        message.alternate_index = index + 1
        message.alternate_count = len(siblings)
        message.previous_alternate = siblings[index - 1].uuid if index > 0 else None
        message.next_alternate = siblings[index + 1].uuid if index + 1 < len(siblings) else None
    # Attachments of the whole branch in one more query.
    attachments = defaultdict(list)
    for attachment in Attachment.objects.filter(message__in=path).order_by("id"):
        attachments[attachment.message_id].append(attachment)
    for message in path:
        message.images = attachments.get(message.id, [])
    return path


def annotate_alternates(message: Message) -> Message:
    """Set the "< 2/3 >" attributes of one message (one query), as branch() does."""
    siblings = list(
        Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id)
        .order_by("id")
        .values_list("id", "uuid")
    )
    ids = [id_ for id_, _ in siblings]
    index = ids.index(message.id)
    message.alternate_index = index + 1
    message.alternate_count = len(siblings)
    message.previous_alternate = siblings[index - 1][1] if index > 0 else None
    message.next_alternate = siblings[index + 1][1] if index + 1 < len(siblings) else None
    return message


def _image_data(attachment: Attachment) -> str:
    with attachment.file.open("rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii")


def history_for(conversation: Conversation, last: Message | None) -> list[dict]:
    """What Ollama needs to answer after `last`: the system prompt, then the branch
    ending at `last`, with images as base64 and reasoning in `thinking`."""
    history = []
    if conversation.system_prompt:
        history.append({"role": "system", "content": conversation.system_prompt})
    if last is None:
        return history
    by_id, _ = _tree(conversation, ("role", "content", "thinking"))
    path = _path_to(by_id[last.id], by_id)
    images = defaultdict(list)
    for attachment in Attachment.objects.filter(message__in=path).order_by("id"):
        images[attachment.message_id].append(_image_data(attachment))
    for message in path:
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue  # a failed answer with no text says nothing to the model
        turn = {"role": message.role, "content": message.content}
        if message.thinking:
            turn["thinking"] = message.thinking  # reasoning goes back apart, never in content
        if images.get(message.id):
            turn["images"] = images[message.id]
        history.append(turn)
    return history


def select_alternate(user: AbstractBaseUser, conversation_uuid, message_uuid) -> Conversation:
    """Show the branch through `message_uuid` (and its most recent continuation)."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    by_id, children = _tree(conversation, ("uuid",))
    chosen = next((m for m in by_id.values() if str(m.uuid) == str(message_uuid)), None)
    if chosen is None:
        raise Http404
    conversation.current_leaf_id = _latest_descendant(chosen, children).id
    conversation.save(update_fields=["current_leaf"])
    return conversation
