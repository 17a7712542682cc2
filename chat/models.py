"""Conversations, their messages, and the per-user profile (sign-up approval)."""

import uuid

from django.conf import settings
from django.db import models

from chat import context_window
from relay import notes


class Profile(models.Model):
    """What Django's User lacks: whether an administrator has approved the account."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    approved = models.BooleanField(default=True)
    # Settings for new conversations (model, system_prompt, options, keep_alive, think,
    # format), validated by chat.settings_form like a conversation's own.
    defaults = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({'approved' if self.approved else 'pending'})"


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        MESSAGE = "message"  # the start of the first message, until the model names it
        MODEL = "model"  # written by the conversation's model after the first answer
        USER = "user"  # renamed by its owner: never overwritten

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(
        max_length=8, choices=TitleSource.choices, default=TitleSource.MESSAGE
    )
    model = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True)
    # Ollama runtime options (temperature, num_ctx, seed, ...), validated by
    # chat.settings_form and sent as they are.
    options = models.JSONField(default=dict, blank=True)
    keep_alive = models.CharField(max_length=20, blank=True)  # "" = Ollama's default
    think = models.CharField(max_length=8, blank=True)  # "", "true", "false" or a level
    format = models.JSONField(null=True, blank=True)  # None, "json" or a JSON schema
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    # The last message of the branch on screen; the branch is its chain of parents.
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # The id this conversation had in the export file it was imported from ("" when it
    # was not imported): importing the same file again skips it (chat.services.importer).
    imported_from = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            # The sidebar: a user's (un)archived conversations, pinned first, then by
            # most recent activity.
            models.Index(
                fields=["owner", "archived", "-pinned", "-updated", "-id"],
                name="conversation_sidebar",
            ),
        ]
        constraints = [
            # One copy per exported conversation and owner, even when two imports of the
            # same file race; its index also serves the importer's "already there?" query.
            models.UniqueConstraint(
                fields=["owner", "imported_from"],
                condition=~models.Q(imported_from=""),
                name="conversation_imported_once",
            ),
        ]

    def __str__(self) -> str:
        return self.title or "New chat"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    FINAL_STATUSES = (Status.COMPLETE, Status.STOPPED, Status.FAILED, Status.INTERRUPTED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The message this one follows. Regenerated answers and edited questions are
    # siblings (same parent): the alternates shown as "< 2/3 >".
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    thinking = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    # Ollama's final metrics: eval_count, eval_duration, prompt_eval_count, ...
    stats = models.JSONField(default=dict, blank=True)
    # While streaming: the channel of the task generating it (stop and snapshot requests
    # go there, from any process) and the time of its last checkpoint, by which a
    # message whose process died is recognised.
    task_channel = models.CharField(max_length=200, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [
            # Opening a conversation: its messages in order.
            models.Index(fields=["conversation", "created"], name="message_conversation_created"),
            # Finding live answers: per-user caps and stale-stream recovery.
            models.Index(
                fields=["status"],
                name="message_streaming",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def total_seconds(self) -> float | None:
        duration = self.stats.get("total_duration")
        return duration / 1e9 if duration else None

    @property
    def thinking_seconds(self) -> float | None:
        millis = self.stats.get("thinking_ms")
        return millis / 1000 if millis is not None else None

    @property
    def context_note(self) -> str:
        """Why the model may have missed the start of the conversation, or ""."""
        return context_window.overflow_note(self.stats)

    @property
    def failover_notes(self) -> list[str]:
        """Each time this answer went on on another Ollama server, in words."""
        return notes.failover_notes(self.stats)

    @property
    def context_usage(self) -> tuple[int, int] | None:
        """(tokens used, context window) of this answer, when known."""
        return context_window.usage(self.stats)

    @property
    def tokens_per_second(self) -> float | None:
        count, duration = self.stats.get("eval_count"), self.stats.get("eval_duration")
        if not count or not duration:
            return None
        return count / duration * 1e9


def _attachment_path(instance: "Attachment", filename: str) -> str:
    # Never the uploaded name: it is the user's text, and two uploads may share it.
    return f"attachments/{instance.conversation.uuid}/{instance.uuid}"


class Attachment(models.Model):
    """An image sent with a message; served only to the conversation's owner."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    # Empty until the message it was uploaded for is sent.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=_attachment_path)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.content_type} ({self.size} bytes)"
