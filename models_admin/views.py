"""The models pages and actions, for staff only.

Views are async: they wait on Ollama without holding a thread, and a pull started here
is a task on the server's event loop that outlives the request. Actions are POSTs that
answer JSON to the page's script (Accept: application/json) and redirect with a message
otherwise, so every button also works without JavaScript.

With several Ollama hosts every page and action is about one of them, chosen by index
(`?host=1` on pages, a `host` field in forms; see models_admin/server.py); none means the
first, and an index that names no host is a 404.
"""

import asyncio
from dataclasses import dataclass
from functools import wraps

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from models_admin import frames, present, pulls, running, server, services
from models_admin.models import Pull
from models_admin.server import describe
from ollama_layer.client import OllamaError, OllamaUnavailable
from ollama_layer.names import is_valid_model_name

# keep_alive values offered for a load: Ollama's duration strings; a negative number
# means "never unload".
KEEP_ALIVE = {
    "5m": "5 minutes",
    "30m": "30 minutes",
    "1h": "1 hour",
    "4h": "4 hours",
    "24h": "1 day",
    "-1": "forever",
}
DEFAULT_KEEP_ALIVE = "5m"

# Templates render Django's messages and the session user: both touch the database,
# which async code may only do from a thread.
_render = sync_to_async(render)


def staff_required(view):
    """Anonymous: to the log-in page. Signed in but not staff: 403, saying why."""

    @wraps(view)
    async def wrapper(request, *args, **kwargs):
        user = await request.auser()
        request.user = user  # resolved once; templates must not query it again
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            return await _render(request, "models_admin/forbidden.html", status=403)
        return await view(request, *args, **kwargs)

    return wrapper


# --- answers --------------------------------------------------------------------------


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(request) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    host = server.from_request(request)
    return reverse("models_admin:index") + host.query


def _on(host: server.Host) -> str:
    """ " on <url>" when there are several hosts, to say which one a message is about."""
    return f" on {host.url}" if server.several() else ""


def _result(request, ok: bool, message: str, status: int = 200, **extra) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"ok": ok, "message": message, **extra}, status=status)
    (messages.success if ok else messages.error)(request, message)
    return redirect(_back(request))


def _invalid_name(request, name: str) -> HttpResponse:
    shown = name.strip() or "(nothing)"
    return _result(
        request,
        False,
        f"“{shown[:100]}” is not a valid model name. Names look like “llama3.2”, "
        "“qwen3:8b” or “namespace/model:tag”.",
        status=400,
    )


def _ollama_failed(request, doing: str, exc: Exception) -> HttpResponse:
    if isinstance(exc, OllamaUnavailable):
        status = 503
    elif isinstance(exc, OllamaError) and exc.status in (400, 404):
        status = exc.status
    else:
        status = 502
    return _result(request, False, f"Could not {doing}. {describe(exc)}", status=status)


async def _local_changed(host: server.Host) -> None:
    await get_channel_layer().group_send(frames.GROUP, frames.local_event(host.url))


# --- pages ----------------------------------------------------------------------------


@dataclass
class Survey:
    """One host as the models page shows it."""

    host: server.Host
    state: running.ServerState
    tags: list[dict] | None  # None: could not be read
    tags_error: str

    @property
    def installed(self) -> int | None:
        return len(self.tags) if self.tags is not None and self.state.ok else None

    @property
    def loaded(self) -> int | None:
        return len(self.state.running) if self.state.ok else None


async def _survey(host: server.Host) -> Survey:
    async def tags():
        try:
            return await host.client().list_models(), ""
        except (OllamaUnavailable, OllamaError) as exc:
            return None, describe(exc)

    (models, error), state = await asyncio.gather(tags(), running.fetch_state(host))
    return Survey(host, state, models, error)


@staff_required
@require_GET
async def index(request):
    host = server.from_request(request)
    partial = request.GET.get("partial")
    sort = request.GET.get("sort", "name")
    sort = sort if sort in present.SORT_KEYS else "name"
    descending = request.GET.get("order") == "desc"
    several = server.several()
    if partial == "local" or not several:
        surveys = [await _survey(host)]
    else:
        # Every host for the hosts table, at once; the chosen one's lists come with it.
        surveys = await asyncio.gather(*(_survey(h) for h in server.hosts()))
    if partial == "hosts":
        # The page's script asks for this when a host's models changed or it came back.
        return await _render(request, "models_admin/_hosts.html", {"hosts": surveys, "host": host})
    chosen = next(survey for survey in surveys if survey.host == host)
    state = chosen.state
    context = {
        **running.context(state),
        "local": present.local_models(chosen.tags or [], state.running, sort, descending),
        "tags_error": chosen.tags_error if state.reachable else "",
        "sort": sort,
        "descending": descending,
        "sort_columns": present.SORT_COLUMNS,
        "keep_alive": KEEP_ALIVE,
        "default_keep_alive": DEFAULT_KEEP_ALIVE,
    }
    if partial == "local":
        # The page's script asks for this when a `local` frame says the list changed.
        return await _render(request, "models_admin/_local.html", context)
    context["hosts"] = surveys if several else []
    context["pulls"] = await database_sync_to_async(services.recent_pulls)()
    return await _render(request, "models_admin/index.html", context)


@staff_required
@require_GET
async def detail(request):
    host = server.from_request(request)
    name = request.GET.get("model", "")
    if not is_valid_model_name(name):
        # Shown back escaped: a NUL or control character must not reach the page as is.
        name = name[:100].encode("unicode_escape").decode("ascii")
    context = {
        "name": name,
        "host": host,
        "several_hosts": server.several(),
        "keep_alive": KEEP_ALIVE,
        "default_keep_alive": DEFAULT_KEEP_ALIVE,
    }
    if not is_valid_model_name(name):
        context["error"] = f"“{name}” is not a valid model name."
        return await _render(request, "models_admin/detail.html", context, status=400)
    try:
        show = await host.client().show(name)
    except (OllamaUnavailable, OllamaError) as exc:
        status = 503 if isinstance(exc, OllamaUnavailable) else 404 if exc.status == 404 else 502
        context["error"] = f"Could not read “{name}”. {describe(exc)}"
        return await _render(request, "models_admin/detail.html", context, status=status)
    context["model"] = present.model_detail(name, show)
    context["conversations"] = await database_sync_to_async(services.conversations_using)(name)
    return await _render(request, "models_admin/detail.html", context)


# --- actions --------------------------------------------------------------------------


@staff_required
@require_POST
async def pull(request):
    host = server.from_request(request)
    name = request.POST.get("model", "").strip()
    if not is_valid_model_name(name):
        return _invalid_name(request, name)
    job, created = await pulls.start_or_join(request.user, name, host)
    payload = frames.pull_payload(job)
    if created:
        message = f"Pulling “{job.model}”{_on(host)}…"
        return _result(request, True, message, status=202, pull=payload)
    by = f" by {payload['by']}" if payload["by"] else ""
    message = f"“{job.model}” is already being pulled{_on(host)} (started{by}); showing that pull."
    return _result(request, True, message, status=200, pull=payload)


@staff_required
@require_POST
async def cancel_pull(request, pull_uuid):
    # A job whose process died cannot answer: recognise that before looking.
    await database_sync_to_async(services.recover_stale_pulls)()
    job: Pull = await database_sync_to_async(services.get_pull)(pull_uuid)
    if job.status != Pull.Status.RUNNING or not job.task_channel:
        message = f"The pull of “{job.model}” has already ended ({job.get_status_display()})."
        return _result(request, False, message, status=409)
    await pulls.request_cancel(job.task_channel)
    return _result(request, True, f"Cancelling the pull of “{job.model}”…")


@staff_required
@require_POST
async def load(request):
    host = server.from_request(request)
    name = request.POST.get("name", "")
    keep_alive = request.POST.get("keep_alive", DEFAULT_KEEP_ALIVE)
    if not is_valid_model_name(name):
        return _invalid_name(request, name)
    if keep_alive not in KEEP_ALIVE:
        return _result(request, False, "Pick how long the model stays loaded.", status=400)
    try:
        await host.client().load(name, -1 if keep_alive == "-1" else keep_alive)
    except (OllamaUnavailable, OllamaError) as exc:
        return _ollama_failed(request, f"load “{name}”{_on(host)}", exc)
    await running.refresh(host)
    if keep_alive == "-1":
        message = f"Loaded “{name}”{_on(host)}; it stays in memory until unloaded."
    else:
        message = (
            f"Loaded “{name}”{_on(host)}; it stays in memory for {KEEP_ALIVE[keep_alive]} "
            "after its last use."
        )
    return _result(request, True, message)


@staff_required
@require_POST
async def unload(request):
    host = server.from_request(request)
    name = request.POST.get("name", "")
    if not is_valid_model_name(name):
        return _invalid_name(request, name)
    try:
        await host.client().unload(name)
    except (OllamaUnavailable, OllamaError) as exc:
        return _ollama_failed(request, f"unload “{name}”{_on(host)}", exc)
    await running.refresh(host)
    return _result(request, True, f"Unloaded “{name}”{_on(host)}.")


@staff_required
@require_http_methods(["GET", "POST"])
async def delete(request):
    """GET: the confirmation, naming the conversations that use the model. POST: delete."""
    # The page links here with ?model=; the form posts `name` (on the models page
    # `input[name=model]` is the pull box alone: a stable hook for end-to-end tests).
    host = server.from_request(request)
    if request.method == "POST":
        name = request.POST.get("name", "")
    else:
        name = request.GET.get("model", "")
    context = {"name": name, "host": host, "several_hosts": server.several()}
    if not is_valid_model_name(name):
        if request.method == "POST":
            return _invalid_name(request, name)
        context["error"] = f"“{name[:100]}” is not a valid model name."
        return await _render(request, "models_admin/delete.html", context, status=400)
    if request.method == "GET":
        context["conversations"] = await database_sync_to_async(services.conversations_using)(name)
        return await _render(request, "models_admin/delete.html", context)
    try:
        await host.client().delete(name)
    except (OllamaUnavailable, OllamaError) as exc:
        return _ollama_failed(request, f"delete “{name}”{_on(host)}", exc)
    await _local_changed(host)
    await running.refresh(host)  # a deleted model is unloaded too
    where = f" at {host.url}" if server.several() else ""
    return _result(request, True, f"Deleted “{name}” from the Ollama server{where}.")


@staff_required
@require_POST
async def copy(request):
    host = server.from_request(request)
    source = request.POST.get("name", "")
    destination = request.POST.get("destination", "").strip()
    for name in (source, destination):
        if not is_valid_model_name(name):
            return _invalid_name(request, name)
    try:
        await host.client().copy(source, destination)
    except (OllamaUnavailable, OllamaError) as exc:
        return _ollama_failed(request, f"copy “{source}” to “{destination}”{_on(host)}", exc)
    await _local_changed(host)
    return _result(request, True, f"Copied “{source}” to “{destination}”{_on(host)}.")
