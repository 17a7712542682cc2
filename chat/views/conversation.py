"""What the conversation page asks for besides the socket: its settings, switching
alternates, images, and what a model can do."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import services, vision
from chat.settings_form import SettingsForm, as_settings
from ollama_layer import hosts
from ollama_layer.client import OllamaError, OllamaUnavailable
from ollama_layer.context_window import context_length_of
from ollama_layer.names import is_valid_model_name


def conversation_settings(conversation) -> dict:
    values = {
        field: getattr(conversation, field)
        for field in ("system_prompt", "options", "keep_alive", "think", "format")
    }
    return as_settings(values, conversation.model)


def _errors(form: SettingsForm) -> JsonResponse:
    return JsonResponse(
        {"errors": {field: list(errors) for field, errors in form.errors.items()}}, status=400
    )


@login_required
@require_http_methods(["GET", "POST"])
def settings_view(request, conversation_uuid):
    conversation = services.get_conversation_for_user(request.user, conversation_uuid)
    if request.method == "GET":
        return JsonResponse({"settings": conversation_settings(conversation)})
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return _errors(form)
    conversation = services.save_settings(request.user, conversation_uuid, form.values())
    return JsonResponse({"settings": conversation_settings(conversation)})


@login_required
@require_http_methods(["GET", "POST"])
def defaults_view(request):
    """The user's settings for new conversations."""
    if request.method == "GET":
        current = as_settings(services.user_defaults(request.user))
        return render(request, "chat/defaults.html", {"settings": current})
    form = SettingsForm(request.POST, model_required=False)
    if not form.is_valid():
        return _errors(form)
    saved = services.save_defaults(request.user, form.values())
    return JsonResponse({"settings": as_settings(saved)})


# A long conversation opens with its last WINDOW messages; older ones come on demand
# ("Show earlier messages"), WINDOW at a time: rendering costs about 0.3 ms a message.
WINDOW = 150


def window(messages: list, *, before=None, around=None) -> tuple[list, object]:
    """The part of a branch to render, and the uuid of its first message when earlier
    ones are left out (None when it starts the conversation).

    `before`: the WINDOW messages before that one. `around`: from a little before that
    message to the end (search hits open there)."""
    end = len(messages)
    ids = [str(message.uuid) for message in messages]
    if before is not None and str(before) in ids:
        end = ids.index(str(before))
    start = max(0, end - WINDOW)
    if around is not None and str(around) in ids:
        start = min(start, max(0, ids.index(str(around)) - 5))
    shown = messages[start:end]
    return shown, (shown[0].uuid if start > 0 and shown else None)


def branch_context(conversation, **where) -> dict:
    shown, earlier = window(services.branch(conversation), **where)
    return {"conversation": conversation, "chat_messages": shown, "earlier_than": earlier}


def _branch_html(request, conversation, **where) -> str:
    return render_to_string(
        "chat/_messages.html", branch_context(conversation, **where), request=request
    )


@login_required
@require_GET
def messages_view(request, conversation_uuid):
    """The branch on screen, or with ?before=<message uuid> the messages before that one
    (for "Show earlier messages")."""
    conversation = services.get_conversation_for_user(request.user, conversation_uuid)
    before = request.GET.get("before")
    return JsonResponse(
        {"html": _branch_html(request, conversation, before=before), "earlier": bool(before)}
    )


@login_required
@require_POST
def alternate_view(request, conversation_uuid, message_uuid):
    """Show another alternate ("< 2/3 >"): the branch through it becomes the one on screen,
    and the one sent to Ollama next."""
    conversation = services.select_alternate(request.user, conversation_uuid, message_uuid)
    return JsonResponse({"html": _branch_html(request, conversation)})


@login_required
@require_POST
def upload_view(request, conversation_uuid):
    upload = request.FILES.get("image")
    if upload is None:
        return JsonResponse({"error": "Choose an image to attach."}, status=400)
    try:
        attachment = services.add_attachment(request.user, conversation_uuid, upload)
    except services.AttachmentRefused as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    return JsonResponse(
        {
            "id": str(attachment.uuid),
            "url": f"/c/{conversation_uuid}/attachments/{attachment.uuid}/",
            "content_type": attachment.content_type,
            "size": attachment.size,
        },
        status=201,
    )


@login_required
@require_http_methods(["GET", "DELETE"])
def attachment_view(request, conversation_uuid, attachment_uuid):
    if request.method == "DELETE":
        try:
            services.remove_attachment(request.user, conversation_uuid, attachment_uuid)
        except services.AttachmentRefused as exc:
            return JsonResponse({"error": exc.message}, status=exc.status)
        return HttpResponse(status=204)
    attachment = services.get_attachment_for_user(request.user, conversation_uuid, attachment_uuid)
    response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    # Only its owner may see it: never in a shared cache.
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Disposition"] = "inline"
    return response


@require_GET
async def model_view(request, name):
    """What one model can do (vision, thinking...), for the page's warnings."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    if not is_valid_model_name(name):
        return JsonResponse({"error": "This is not a valid model name."}, status=400)
    try:
        shown = await (await hosts.client_for(name)).show(name)
    except OllamaUnavailable as exc:
        # Host addresses are internal: only staff see which one (without credentials).
        return JsonResponse({"error": f"{exc.detailed if user.is_staff else exc}."}, status=503)
    except OllamaError as exc:
        return JsonResponse({"error": f"Ollama said: {exc.message}"}, status=exc.status or 502)
    capabilities = list(shown.get("capabilities") or [])
    vision.remember(name, capabilities)
    context = context_length_of(shown)
    return JsonResponse({"name": name, "capabilities": capabilities, "context_length": context})
