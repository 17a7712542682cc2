"""Answers: starting one (new question, regenerate, edit, continue), checkpointing its
text while it streams, and recording its one final state (recovering answers whose
process died: chat/services/recovery.py)."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from chat import limits, protocol, text
from chat.models import Attachment, Conversation, Message
from chat.services.accounts import can_chat
from chat.services.branches import annotate_alternates, history_for
from chat.services.recovery import recover_stale_answers
from relay.streams import partial_answer

Status = Message.Status
Role = Message.Role
TITLE_LENGTH = 60
CONTINUABLE = (Status.STOPPED, Status.FAILED, Status.INTERRUPTED)


class AnswerRefused(Exception):
    """A message cannot be answered now; `code` and `message` go to the user as is."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class StartedAnswer:
    question: Message | None  # None when an existing question is answered again
    answer: Message
    history: list[dict]
    conversation: Conversation

    def __post_init__(self):
        # Built here, in the database thread: the socket frames need the parent's uuid
        # and the "< 2/3 >" alternates, which take queries.
        self.question_payload = None
        if self.question is not None:
            if not hasattr(self.question, "images"):
                self.question.images = list(self.question.attachments.order_by("id"))
            if not hasattr(self.question, "alternate_count"):
                annotate_alternates(self.question)
            self.question_payload = protocol.message_payload(self.question)
        if not hasattr(self.answer, "alternate_count"):
            annotate_alternates(self.answer)
        self.answer_extra = {
            "parent": str(self.answer.parent.uuid) if self.answer.parent_id else None,
            "alternates": protocol.alternates_payload(self.answer),
        }


def _title_from(content: str) -> str:
    line = text.clean_line(content)  # as every title: see chat.text
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def _open_for_answer(user: AbstractBaseUser, conversation_uuid) -> Conversation:
    """The conversation, locked, once every reason to refuse a new answer is ruled out."""
    if not user.is_authenticated:
        raise Http404
    if not can_chat(user):
        raise AnswerRefused("pending", "Your account is waiting for an administrator's approval.")
    if not limits.hit(f"send:{user.pk}", settings.MESSAGES_PER_MINUTE, 60):
        raise AnswerRefused(
            "rate_limited",
            f"You are sending messages too fast (limit: {settings.MESSAGES_PER_MINUTE} a "
            "minute). Wait a moment; your text is still in the box.",
        )
    # The ownership lookup and the lock in one query: answers are serialised per
    # conversation (PostgreSQL; SQLite's IMMEDIATE transactions serialise all writers).
    try:
        conversation = Conversation.objects.select_for_update().get(
            uuid=conversation_uuid, owner=user
        )
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    recover_stale_answers(conversation=conversation)
    streaming_in = list(
        Message.objects.filter(conversation__owner=user, status=Status.STREAMING).values_list(
            "conversation_id", flat=True
        )
    )
    if conversation.id in streaming_in:
        raise AnswerRefused("busy", "An answer is still being written. Stop it or wait.")
    running = len(streaming_in)
    if running >= settings.MAX_CONCURRENT_ANSWERS:
        raise AnswerRefused(
            "too_many_answers",
            f"You already have {running} answers being written; wait for one to finish.",
        )
    return conversation


def _message_in(conversation: Conversation, message_uuid, role: str) -> Message:
    try:
        return conversation.messages.get(uuid=message_uuid, role=role)
    except (Message.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def _new_answer(conversation, parent, model, task_channel, fields: list[str]) -> Message:
    answer = Message.objects.create(
        conversation=conversation,
        parent=parent,
        role=Role.ASSISTANT,
        model=model,
        status=Status.STREAMING,
        task_channel=task_channel,
        heartbeat=timezone.now(),
    )
    conversation.current_leaf = answer
    if conversation.model != model:
        conversation.model = model
        fields.append("model")
    conversation.save(update_fields=["current_leaf", "updated", *fields])
    return answer


def _attach(conversation, question: Message, image_uuids: list[str]) -> None:
    question.images = []
    if not image_uuids:
        return
    found = Attachment.objects.filter(
        conversation=conversation, message=None, uuid__in=image_uuids
    ).update(message=question)
    if found != len(set(image_uuids)):
        # Someone else's, already sent, or never uploaded: refuse the whole message.
        raise AnswerRefused("invalid", "An attached image was not found; attach it again.")
    question.images = list(question.attachments.order_by("id"))


def _only_child(message: Message) -> Message:
    """A message added after the branch's last one has no alternates: say so without
    asking the database (the branch's last message never has children of its own)."""
    message.alternate_index = message.alternate_count = 1
    message.previous_alternate = message.next_alternate = None
    return message


@transaction.atomic
def start_answer(
    user: AbstractBaseUser,
    conversation_uuid,
    content: str,
    model: str,
    task_channel: str,
    images: list[str] | None = None,
) -> StartedAnswer:
    """Save the user's message (after the branch on screen) and a `streaming` answer."""
    conversation = _open_for_answer(user, conversation_uuid)
    question = Message.objects.create(
        conversation=conversation,
        parent_id=conversation.current_leaf_id,
        role=Role.USER,
        content=content,
    )
    _attach(conversation, question, images or [])
    fields = []
    if not conversation.title:
        conversation.title = _title_from(content)
        fields.append("title")
    answer = _new_answer(conversation, question, model, task_channel, fields)
    _only_child(question)
    _only_child(answer)
    return StartedAnswer(question, answer, history_for(conversation, question), conversation)


@transaction.atomic
def regenerate_answer(
    user: AbstractBaseUser, conversation_uuid, message_uuid, model: str, task_channel: str
) -> StartedAnswer:
    """A new answer to the same question; the old one stays as an alternate."""
    conversation = _open_for_answer(user, conversation_uuid)
    old = _message_in(conversation, message_uuid, Role.ASSISTANT)
    question = old.parent
    answer = _new_answer(conversation, question, model, task_channel, [])
    return StartedAnswer(None, answer, history_for(conversation, question), conversation)


@transaction.atomic
def edit_question(
    user: AbstractBaseUser,
    conversation_uuid,
    message_uuid,
    content: str,
    model: str,
    task_channel: str,
) -> StartedAnswer:
    """An edited copy of a question, answered anew; the original stays as an alternate
    with its own answers. Images of the original go with the copy."""
    conversation = _open_for_answer(user, conversation_uuid)
    original = _message_in(conversation, message_uuid, Role.USER)
    question = Message.objects.create(
        conversation=conversation, parent=original.parent, role=Role.USER, content=content
    )
    Attachment.objects.bulk_create(
        Attachment(
            conversation=conversation,
            message=question,
            file=image.file.name,
            content_type=image.content_type,
            size=image.size,
        )
        for image in original.attachments.all()
    )
    answer = _new_answer(conversation, question, model, task_channel, [])
    return StartedAnswer(question, answer, history_for(conversation, question), conversation)


@transaction.atomic
def continue_answer(
    user: AbstractBaseUser, conversation_uuid, message_uuid, task_channel: str
) -> StartedAnswer:
    """Pick up a stopped, failed or interrupted answer where its text ends: Ollama
    continues a conversation whose last message is a partial assistant message."""
    conversation = _open_for_answer(user, conversation_uuid)
    answer = _message_in(conversation, message_uuid, Role.ASSISTANT)
    if answer.status not in CONTINUABLE:
        raise AnswerRefused("invalid", "Only a stopped, failed or interrupted answer continues.")
    answer.status = Status.STREAMING
    answer.error = ""
    answer.task_channel = task_channel
    answer.heartbeat = timezone.now()
    answer.save(update_fields=["status", "error", "task_channel", "heartbeat"])
    conversation.current_leaf = answer
    conversation.save(update_fields=["current_leaf", "updated"])
    history = history_for(conversation, answer.parent)
    history += partial_answer(answer.content, answer.thinking)
    return StartedAnswer(None, answer, history, conversation)


def checkpoint_answer(message_id: int, content: str, thinking: str) -> bool:
    """Save the text so far (at most about once a second) and prove we are alive. False
    if the answer is no longer streaming: another process took it for dead and ended it
    (chat/services/recovery.py)."""
    return bool(
        Message.objects.filter(id=message_id, status=Status.STREAMING).update(
            content=content, thinking=thinking, heartbeat=timezone.now()
        )
    )


def finish_answer(
    message_id: int, status: str, content: str, thinking: str, stats: dict, error: str = ""
) -> bool:
    """Record the one final state. False if something else already ended it."""
    return bool(
        Message.objects.filter(id=message_id, status=Status.STREAMING).update(
            status=status,
            content=content,
            thinking=thinking,
            stats=stats,
            error=error,
            task_channel="",
            heartbeat=timezone.now(),
        )
    )
