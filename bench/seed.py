"""Rows for the benchmarks, written straight into the scratch database with the ORM
(fast: no password hashing, no sign-up over HTTP). Call after django.setup()."""

from datetime import timedelta

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string

from chat.models import Conversation, Profile

BACKEND = "django.contrib.auth.backends.ModelBackend"


def users(prefix: str, count: int) -> list:
    """`count` approved users with an unusable password (nobody logs in with one)."""
    User = get_user_model()
    made = User.objects.bulk_create(
        User(username=f"{prefix}{index}", password=make_password(None)) for index in range(count)
    )
    Profile.objects.bulk_create(Profile(user=user, approved=True) for user in made)
    return made


def session_cookies(people: list) -> list[str]:
    """A logged-in session per user, as `Cookie` header values ("sessionid=...")."""
    store = SessionStore()
    expires = timezone.now() + timedelta(days=1)
    rows = []
    for user in people:
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: BACKEND,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expires))
    Session.objects.bulk_create(rows)
    return [f"sessionid={row.session_key}" for row in rows]


def conversations(people: list, model: str, label: str) -> list[str]:
    """One new, empty conversation per user; returns their uuids (as strings)."""
    made = Conversation.objects.bulk_create(
        Conversation(owner=user, model=model, title=f"{label} {index}")
        for index, user in enumerate(people)
    )
    return [str(conversation.uuid) for conversation in made]
