"""Conversations: the ownership lookup, creation, and what their settings send to Ollama."""

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from chat.models import Conversation, Profile

# Settings a new conversation takes from its owner's defaults.
DEFAULT_FIELDS = ("system_prompt", "options", "keep_alive", "think", "format")


def get_conversation_for_user(user: AbstractBaseUser, conversation_uuid) -> Conversation:
    """The one lookup for pages, exports and socket events: strangers get a 404."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Conversation.objects.get(uuid=conversation_uuid, owner=user)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def create_conversation(user: AbstractBaseUser, model: str) -> Conversation:
    defaults = user_defaults(user)
    fields = {key: defaults[key] for key in DEFAULT_FIELDS if key in defaults}
    return Conversation.objects.create(owner=user, model=model, **fields)


def _keep_alive(value: str) -> str | int | None:
    if not value:
        return None
    # Ollama reads a JSON number as seconds but rejects a unit-less *string*.
    return int(value) if value.lstrip("-").isdigit() else value


def _think(value: str) -> bool | str | None:
    return {"": None, "true": True, "false": False}.get(value, value)


def ollama_request(conversation: Conversation) -> dict:
    """The per-conversation parts of an /api/chat request (see OllamaClient.chat_stream)."""
    return {
        "options": conversation.options or None,
        "keep_alive": _keep_alive(conversation.keep_alive),
        "think": _think(conversation.think),
        "format": conversation.format or None,
    }


def save_settings(user: AbstractBaseUser, conversation_uuid, values: dict) -> Conversation:
    """Store validated settings (chat.settings_form) on a conversation; they apply to
    the next request."""
    conversation = get_conversation_for_user(user, conversation_uuid)
    for field, value in values.items():
        setattr(conversation, field, value)
    conversation.save(update_fields=[*values, "updated"])
    return conversation


def save_defaults(user: AbstractBaseUser, values: dict) -> dict:
    """A user's settings for new conversations."""
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.defaults = values
    profile.save(update_fields=["defaults"])
    return values


def user_defaults(user: AbstractBaseUser) -> dict:
    return Profile.objects.filter(user=user).values_list("defaults", flat=True).first() or {}
