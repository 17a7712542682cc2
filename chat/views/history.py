"""The conversation list and what it does: pages of the list, rename, pin, archive,
delete, search, export and import. Every view that names a conversation looks it up
through `services.get_conversation_for_user`: a stranger gets a 404, never data."""

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import exports, imports, search, services, sidebar


def _flag(request, name: str) -> bool:
    return request.POST.get(name, "1") not in ("0", "false", "")


def _attachment(body: str | bytes, content_type: str, name: str) -> HttpResponse:
    return _download(HttpResponse(body, content_type=content_type), name)


def _download(response: HttpResponse | StreamingHttpResponse, name: str):
    # `name` is ASCII without quotes (exports.filename), safe inside the header.
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- the list -------------------------------------------------------------------------


@login_required
@require_GET
def sidebar_view(request):
    """The next page of the list, as HTML to append, and the cursor of the one after."""
    archived = request.GET.get("archived") == "1"
    try:
        page = sidebar.sidebar_page(
            request.user, archived=archived, before=request.GET.get("before") or None
        )
    except sidebar.BadCursor:
        return JsonResponse({"error": "This list position is not valid; reload."}, status=400)
    html = render_to_string(
        "chat/_sidebar_groups.html", {"page": page, "more": True}, request=request
    )
    return JsonResponse({"html": html, "next": page.next_cursor})


@login_required
@require_GET
def archive_view(request):
    return render(request, "chat/archive.html")


@login_required
@require_POST
def rename_view(request, conversation_uuid):
    try:
        conversation = services.rename_conversation(
            request.user, conversation_uuid, request.POST.get("title", "")
        )
    except services.HistoryRefused as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"title": conversation.title})


@login_required
@require_POST
def pin_view(request, conversation_uuid):
    conversation = services.set_pinned(request.user, conversation_uuid, _flag(request, "pinned"))
    return JsonResponse({"pinned": conversation.pinned})


@login_required
@require_POST
def archive_conversation_view(request, conversation_uuid):
    conversation = services.set_archived(
        request.user, conversation_uuid, _flag(request, "archived")
    )
    return JsonResponse({"archived": conversation.archived, "pinned": conversation.pinned})


@login_required
@require_POST
def delete_view(request, conversation_uuid):
    services.delete_conversation(request.user, conversation_uuid)
    return JsonResponse({"deleted": True})


# --- search ---------------------------------------------------------------------------


@login_required
@require_GET
def search_view(request):
    """The search page; with `partial=1`, only the results, for the list's search box."""
    query = search.normalize(request.GET.get("q", ""))
    context = {"query": query, "hits": search.search(request.user, query)}
    if request.GET.get("partial") == "1":
        html = render_to_string("chat/_search_results.html", context, request=request)
        return JsonResponse({"query": query, "html": html})
    return render(request, "chat/search.html", context)


@login_required
@require_GET
def open_message_view(request, conversation_uuid, message_uuid):
    """A search hit: the conversation, scrolled to the message, on the branch holding it."""
    services.open_at_message(request.user, conversation_uuid, message_uuid)
    url = reverse("chat:conversation", args=[conversation_uuid])
    # ?around: a long conversation opens with the hit rendered, not only its last part.
    return redirect(f"{url}?around={message_uuid}#m-{message_uuid}")


# --- export and import ----------------------------------------------------------------


@login_required
@require_GET
def export_markdown_view(request, conversation_uuid):
    conversation = services.get_conversation_for_user(request.user, conversation_uuid)
    return _attachment(
        exports.conversation_markdown(conversation),
        "text/markdown; charset=utf-8",
        exports.filename(conversation, "md"),
    )


def _streamed(request, pieces: Iterator[str], name: str) -> StreamingHttpResponse:
    """A JSON download sent as it is written (exports carry images: never whole in
    memory). Under ASGI (Daphne) Django would first collect a plain iterator into a list,
    so it gets an async one, each piece made in a worker thread (reading image files)."""
    content = _async_pieces(pieces) if isinstance(request, ASGIRequest) else pieces
    return _download(StreamingHttpResponse(content, content_type="application/json"), name)


async def _async_pieces(pieces: Iterator[str]) -> AsyncIterator[str]:
    done = object()
    # No database work happens in here (exports made their queries already), so any
    # thread will do.
    following = sync_to_async(next, thread_sensitive=False)
    while (piece := await following(pieces, done)) is not done:
        yield piece


@login_required
@require_GET
def export_json_view(request, conversation_uuid):
    conversation = services.get_conversation_for_user(request.user, conversation_uuid)
    return _streamed(
        request, exports.conversation_json(conversation), exports.filename(conversation, "json")
    )


@login_required
@require_GET
def export_all_view(request):
    return _streamed(
        request,
        exports.all_conversations_json(request.user),
        f"ollama-chat-{timezone.localdate():%Y-%m-%d}.json",
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_view(request):
    context = {"max_mb": settings.MAX_IMPORT_BYTES / 1e6}
    if request.method == "GET":
        return render(request, "chat/import.html", context)
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise imports.ImportRefused("Choose a file exported from Ollama Chat (JSON).")
        if upload.size > settings.MAX_IMPORT_BYTES:
            # Refused before reading it into memory.
            raise imports.ImportRefused(
                f"The file is too large ({upload.size / 1e6:.1f} MB; the limit is "
                f"{context['max_mb']:.1f} MB)."
            )
        imported = imports.parse_import(upload.read(), upload.name or "")
        result = services.import_conversations(request.user, imported)
    except imports.ImportRefused as exc:
        return render(request, "chat/import.html", {**context, "error": exc.message}, status=400)
    messages.success(request, _import_summary(result))
    return redirect("chat:home")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _import_summary(result: services.ImportResult) -> str:
    """ "Imported 2 conversations." / "1 imported, 3 already there." and a note on images."""
    if not result.already_there:
        summary = f"Imported {_plural(result.imported, 'conversation')}."
    elif not result.imported:
        summary = (
            f"Nothing imported: the file's {_plural(result.already_there, 'conversation')} "
            f"{'is' if result.already_there == 1 else 'are'} already there."
        )
    else:
        summary = f"{result.imported} imported, {result.already_there} already there."
    if result.images_missing:
        summary += (
            f" {_plural(result.images_missing, 'image')} could not be restored: the file "
            "lists them without their data (it was exported before images were included)."
        )
    return summary
