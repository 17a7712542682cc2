"""Pull jobs: one row per `ollama pull` started from the models page.

The models themselves live on the Ollama server and are never copied here; only the
pulls are, because they outlive the request that started them and must be visible to
every staff page, after a reload and from any process.
"""

import uuid

from django.conf import settings
from django.db import models

from models_admin import progress


class Pull(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # As the staff member typed it, with ":latest" added when there was no tag (a valid
    # name has at most 600 characters before that).
    model = models.CharField(max_length=640)
    # Lower-cased `model`: Ollama looks names up case-insensitively, so "Llama3.2" and
    # "llama3.2:latest" are one pull (see the constraint below).
    key = models.CharField(max_length=640, editable=False)
    # The Ollama host it was pulled to (one of OLLAMA_URLS, or OLLAMA_URL). Empty on the
    # rows of older versions, which only ever pulled to the first host.
    host = models.CharField(max_length=300, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # Ollama's last status line: "pulling manifest", "pulling dde5aa3fc5ff", "verifying...".
    detail = models.CharField(max_length=200, blank=True)
    completed = models.BigIntegerField(default=0)  # bytes, summed over all layers
    total = models.BigIntegerField(default=0)
    # The share of the pull the bar shows, 0..1: it never decreases, and is 1 only once
    # the pull is done (the rule is in models_admin/progress.py).
    fraction = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    # While running: the channel of the task doing it (cancel and snapshot requests go
    # there from any process) and the time of its last checkpoint.
    task_channel = models.CharField(max_length=200, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started", "-id"]
        indexes = [
            # The history on the models page: the latest pulls first.
            models.Index(fields=["-started"], name="pull_started"),
        ]
        constraints = [
            # A second pull of a model running on the same host joins the first; the
            # database makes sure two simultaneous requests cannot both start one.
            models.UniqueConstraint(
                fields=["host", "key"],
                condition=models.Q(status="running"),
                name="one_running_pull_per_host_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.status})"

    @property
    def percent(self) -> int | None:
        """The whole percent the bar shows; None before Ollama has named a layer."""
        if self.status == self.Status.DONE:
            return 100
        if not self.total:
            return None
        return progress.percent(self.fraction)
