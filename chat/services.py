"""Every write to the chat tables goes through here: plain sync functions, each one
transaction. Async callers wrap them in `database_sync_to_async`.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from chat import limits
from chat.models import Conversation, Message, Profile

Status = Message.Status
TITLE_LENGTH = 60


class AnswerRefused(Exception):
    """A message cannot be answered now; `code` and `message` go to the user as is."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- lookups that check ownership -----------------------------------------------------


def get_conversation_for_user(user: AbstractBaseUser, conversation_uuid) -> Conversation:
    """The one lookup for pages, exports and socket events: strangers get a 404."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Conversation.objects.get(uuid=conversation_uuid, owner=user)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def can_chat(user: AbstractBaseUser) -> bool:
    """Signed in and, where sign-up needs approval, approved."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    profile = Profile.objects.filter(user=user).only("approved").first()
    return profile is None or profile.approved


# --- accounts -------------------------------------------------------------------------


@transaction.atomic
def register_user(username: str, password: str, email: str = ""):
    """Create an account. The very first one becomes the administrator."""
    User = get_user_model()
    # Lock the table's first row so two simultaneous first sign-ups can't both be admin.
    first = not User.objects.select_for_update().exists()
    user = User.objects.create_user(username=username, password=password, email=email)
    if first:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    approved = first or settings.SIGNUP_MODE != "approval"
    Profile.objects.create(user=user, approved=approved)
    return user


def approve_users(users) -> int:
    return Profile.objects.filter(user__in=users).update(approved=True)


# --- conversations --------------------------------------------------------------------


def create_conversation(user: AbstractBaseUser, model: str) -> Conversation:
    return Conversation.objects.create(owner=user, model=model)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def history_for(conversation: Conversation, before: Message) -> list[dict]:
    """What Ollama needs to answer `before`: system prompt, then every earlier turn."""
    history = []
    if conversation.system_prompt:
        history.append({"role": "system", "content": conversation.system_prompt})
    turns = (
        conversation.messages.filter(id__lt=before.id)
        .exclude(role=Message.Role.SYSTEM)
        .only("role", "content", "thinking", "status")
        .order_by("id")
    )
    for message in turns:
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue  # a failed answer with no text says nothing to the model
        turn = {"role": message.role, "content": message.content}
        if message.thinking:
            turn["thinking"] = message.thinking  # reasoning goes back apart, never in content
        history.append(turn)
    return history


def ollama_request(conversation: Conversation) -> dict:
    """The per-conversation parts of an /api/chat request (see OllamaClient.chat_stream)."""
    return {"options": conversation.options or None}


@dataclass
class StartedAnswer:
    question: Message
    answer: Message
    history: list[dict]
    conversation: Conversation


@transaction.atomic
def start_answer(
    user: AbstractBaseUser, conversation_uuid, content: str, model: str, task_channel: str
) -> StartedAnswer:
    """Save the user's message and a `streaming` answer in one go, or refuse."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    if not can_chat(user):
        raise AnswerRefused("pending", "Your account is waiting for an administrator's approval.")
    if not limits.hit(f"send:{user.pk}", settings.MESSAGES_PER_MINUTE, 60):
        raise AnswerRefused(
            "rate_limited",
            f"You are sending messages too fast (limit: {settings.MESSAGES_PER_MINUTE} a "
            "minute). Wait a moment; your text is still in the box.",
        )
    # Serialise sends per conversation (PostgreSQL; SQLite's IMMEDIATE transactions
    # serialise all writers anyway).
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    recover_stale_answers(conversation=conversation)
    if conversation.messages.filter(status=Status.STREAMING).exists():
        raise AnswerRefused("busy", "An answer is still being written. Stop it or wait.")
    running = Message.objects.filter(conversation__owner=user, status=Status.STREAMING).count()
    if running >= settings.MAX_CONCURRENT_ANSWERS:
        raise AnswerRefused(
            "too_many_answers",
            f"You already have {running} answers being written; wait for one to finish.",
        )
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content
    )
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        model=model,
        status=Status.STREAMING,
        task_channel=task_channel,
        heartbeat=timezone.now(),
    )
    fields = ["updated"]
    if conversation.model != model:
        conversation.model = model
        fields.append("model")
    if not conversation.title:
        conversation.title = _title_from(content)
        fields.append("title")
    conversation.save(update_fields=fields)
    return StartedAnswer(question, answer, history_for(conversation, answer), conversation)


def checkpoint_answer(message_id: int, content: str, thinking: str) -> None:
    """Save the text so far (at most about once a second) and prove we are alive."""
    Message.objects.filter(id=message_id, status=Status.STREAMING).update(
        content=content, thinking=thinking, heartbeat=timezone.now()
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


def recover_stale_answers(conversation: Conversation | None = None) -> int:
    """Mark answers whose generating process is gone as `interrupted`.

    A process that is alive checkpoints at least every few seconds, so a heartbeat older
    than STALE_SECONDS means it died. A single-process set-up (in-memory channel layer)
    knows every live answer is its own, so it recovers a restart at once instead of
    waiting for the heartbeat to age.
    """
    from chat import generation  # the registry of live answers in this process

    streaming = Message.objects.filter(status=Status.STREAMING)
    if conversation is not None:
        streaming = streaming.filter(conversation=conversation)
    stale = streaming.filter(
        heartbeat__lt=timezone.now() - timedelta(seconds=settings.STALE_SECONDS)
    )
    if generation.single_process():
        stale = streaming.exclude(task_channel__in=generation.live_channels())
    return stale.update(
        status=Status.INTERRUPTED,
        error="The server stopped while this answer was being written.",
        task_channel="",
    )
