"""Every write to the pull table goes through here: plain sync functions, each one
transaction. Async callers wrap them in `database_sync_to_async`.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from chat.models import Conversation
from models_admin import live
from models_admin.models import Pull
from relay import live as relay_live

Status = Pull.Status
HISTORY_SIZE = 20
INTERRUPTED = "The server stopped while this pull was running. Pull it again to resume."


# --- names ----------------------------------------------------------------------------


def has_tag(name: str) -> bool:
    # Ollama splits the tag at the last ":" only after the last "/" (a host may have a port).
    return name.rfind(":") > name.rfind("/")


def normalize_name(name: str) -> str:
    """The name with Ollama's default tag, so that "llama3.2" and "llama3.2:latest" meet."""
    return name if has_tag(name) else f"{name}:latest"


def name_forms(name: str) -> list[str]:
    """Both spellings a conversation may hold for one model."""
    full = normalize_name(name)
    short = full.removesuffix(":latest")
    return [full] if short == full else [full, short]


def conversations_using(name: str) -> int:
    """Conversations whose model is this one, spelled with or without ":latest"."""
    query = Q()
    for form in name_forms(name):
        query |= Q(model__iexact=form)
    return Conversation.objects.filter(query).count()


# --- pulls ----------------------------------------------------------------------------


def get_pull(pull_uuid) -> Pull:
    try:
        return Pull.objects.select_related("requested_by").get(uuid=pull_uuid)
    except (Pull.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def recent_pulls(limit: int = HISTORY_SIZE) -> list[Pull]:
    recover_stale_pulls()
    return list(Pull.objects.select_related("requested_by")[:limit])


def running_pulls() -> list[Pull]:
    recover_stale_pulls()
    return list(Pull.objects.select_related("requested_by").filter(status=Status.RUNNING))


def start_pull(
    user: AbstractBaseUser, name: str, task_channel: str, host: str = ""
) -> tuple[Pull, bool]:
    """(the pull, True) for a new pull; (the running one, False) when this model is
    already being pulled to this host, so the caller joins it instead of starting
    another. `host` is the Ollama host's URL."""
    model = normalize_name(name)
    key = model.lower()
    recover_stale_pulls()
    try:
        with transaction.atomic():
            running = (
                Pull.objects.select_related("requested_by")
                .filter(host=host, key=key, status=Status.RUNNING)
                .first()
            )
            if running is not None:
                return running, False
            pull = Pull.objects.create(
                model=model,
                key=key,
                host=host,
                requested_by=user,
                task_channel=task_channel,
                heartbeat=timezone.now(),
            )
            return pull, True
    except IntegrityError:
        # Another request started the same pull between our check and our insert.
        return Pull.objects.select_related("requested_by").get(
            host=host, key=key, status=Status.RUNNING
        ), False


def checkpoint_pull(pull_id: int, detail: str, completed: int, total: int, fraction: float) -> None:
    """Save the progress so far (at most about once a second) and prove we are alive.
    `fraction` (0..1) comes from models_admin/progress.py, which never lowers it."""
    Pull.objects.filter(id=pull_id, status=Status.RUNNING).update(
        detail=detail[:200],
        completed=completed,
        total=total,
        fraction=fraction,
        heartbeat=timezone.now(),
    )


def finish_pull(
    pull_id: int,
    status: str,
    detail: str,
    completed: int,
    total: int,
    error: str = "",
    *,
    fraction: float | None = None,
) -> bool:
    """Record the one final state. False if something else already ended it.

    `fraction` is what the bar shows (0..1, models_admin/progress.py): 1 for a pull that
    is done; any other end keeps the bar where it stopped (None: done means 1, else the
    saved value stays)."""
    now = timezone.now()
    fields = {"fraction": fraction} if fraction is not None else {}
    if status == Status.DONE:
        fields["fraction"] = 1.0
    return bool(
        Pull.objects.filter(id=pull_id, status=Status.RUNNING).update(
            status=status,
            detail=detail[:200],
            completed=completed,
            total=total,
            error=error,
            task_channel="",
            heartbeat=now,
            finished=now,
            **fields,
        )
    )


def recover_stale_pulls() -> list[Pull]:
    """Mark pulls whose process is gone as interrupted (as chat does for answers), and
    return them so that open pages can be told.

    A live pull checkpoints at least every few seconds, so an old heartbeat means its
    process died. With the in-memory channel layer there is only this process, which
    knows its own pulls, so a restart is recognised at once.
    """

    running = Pull.objects.filter(status=Status.RUNNING)
    stale = running.filter(heartbeat__lt=timezone.now() - timedelta(seconds=settings.STALE_SECONDS))
    if relay_live.single_process():
        stale = running.exclude(task_channel__in=live.live_channels())
    ids = list(stale.values_list("id", flat=True))
    if not ids:
        return []
    Pull.objects.filter(id__in=ids, status=Status.RUNNING).update(
        status=Status.INTERRUPTED, error=INTERRUPTED, task_channel="", finished=timezone.now()
    )
    return list(Pull.objects.select_related("requested_by").filter(id__in=ids))
