"""The chat pages: the conversation list, one conversation, and starting a new one."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from chat import context_window, services
from chat.models import Conversation
from chat.settings_form import as_settings
from chat.views.conversation import branch_context, conversation_settings
from ollama_layer import hosts
from ollama_layer.client import OllamaError, OllamaUnavailable, public_url
from ollama_layer.names import is_valid_model_name


def _page(request, conversation: Conversation | None):
    """The chat page; the sidebar fills itself (chat.sidebar, via its template tag)."""
    branch = {"chat_messages": [], "earlier_than": None}
    if conversation is not None:
        services.recover_stale_answers(conversation=conversation)
        branch = branch_context(conversation, around=request.GET.get("around"))
        model, panel = conversation.model, conversation_settings(conversation)
    else:
        defaults = services.user_defaults(request.user)
        model = defaults.get("model") or settings.DEFAULT_MODEL
        panel = as_settings(defaults, model)
    return render(
        request,
        "chat/chat.html",
        {
            "conversation": conversation,
            "chat_messages": branch["chat_messages"],
            "earlier_than": branch["earlier_than"],
            "can_chat": services.can_chat(request.user),
            "context_gauge": context_window.gauge(branch["chat_messages"]),
            "page_data": {
                "conversation": str(conversation.uuid) if conversation else None,
                "model": model,
                "maxMessageChars": settings.MAX_MESSAGE_CHARS,
                "maxImageBytes": settings.MAX_IMAGE_BYTES,
                "maxImagesPerMessage": settings.MAX_IMAGES_PER_MESSAGE,
                "settings": panel,
            },
        },
    )


@login_required
@require_GET
def home(request):
    return _page(request, None)


@login_required
@require_GET
def conversation(request, conversation_uuid):
    return _page(request, services.get_conversation_for_user(request.user, conversation_uuid))


@login_required
@require_POST
def new_conversation(request):
    """Called by the page's script when the first message of a new chat is sent. (Accounts
    waiting for approval never get here: chat.access.)"""
    model = request.POST.get("model", "")
    if not is_valid_model_name(model):
        return JsonResponse({"error": "Pick a model before sending."}, status=400)
    created = services.create_conversation(request.user, model)
    return JsonResponse({"id": str(created.uuid), "url": f"/c/{created.uuid}/"}, status=201)


@require_GET
async def models(request):
    """The model picker's list, from every host's /api/tags (docs/frontend.md).

    Each model: `name`, `parameter_size`, `family`, `available` (False while every host
    that has it is down: unreachable for now, not missing). Host addresses are internal:
    only staff get `hosts`, without credentials. `incomplete` is True when a host that is
    down never listed its models, so a model missing here may be on it."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    pool = hosts.pool()
    try:
        tags = await pool.list_models()
    except OllamaUnavailable as exc:
        reason = exc.detailed if user.is_staff else str(exc)
        return JsonResponse(
            {"error": f"{reason}. Answers can't be written until it is back.", "models": []},
            status=503,
        )
    except OllamaError as exc:
        return JsonResponse({"error": f"Ollama said: {exc.message}", "models": []}, status=502)
    names = []
    for tag in tags:
        details = tag.get("details") or {}
        entry = {
            "name": tag.get("name") or tag.get("model", ""),
            "parameter_size": details.get("parameter_size", ""),
            "family": details.get("family", ""),
            "available": tag.get("available", True),
        }
        if user.is_staff:
            entry["hosts"] = [public_url(url) for url in tag.get("hosts", [])]
        names.append(entry)
    names.sort(key=lambda item: item["name"])
    return JsonResponse(
        {
            "models": names,
            "default": settings.DEFAULT_MODEL,
            "incomplete": bool(pool.unknown_down()) if len(pool.hosts) > 1 else False,
        }
    )
