"""Accounts: sign-up (the first account is the administrator) and approval."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chat.models import Profile


def can_chat(user: AbstractBaseUser) -> bool:
    """Signed in and, where sign-up needs approval, approved."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    profile = Profile.objects.filter(user=user).only("approved").first()
    return profile is None or profile.approved


def register_user(username: str, password: str, email: str = ""):
    """Create an account. The very first one becomes the administrator.

    The password is hashed (about 0.5 s of CPU) before the write transaction opens: on
    SQLite a transaction holds the database's one write lock, and a crowd of sign-ups
    hashing inside it made everyone else's writes wait until "database is locked".
    Raises IntegrityError when the name was taken meanwhile."""
    return _create_account(username, make_password(password), email)


@transaction.atomic
def _create_account(username: str, password_hash: str, email: str):
    User = get_user_model()
    # Lock the table's first row so two simultaneous first sign-ups can't both be admin.
    first = not User.objects.select_for_update().exists()
    user = User(
        username=User.normalize_username(username),
        email=User.objects.normalize_email(email),
        password=password_hash,
    )
    user.save()
    if first:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    approved = first or settings.SIGNUP_MODE != "approval"
    Profile.objects.create(user=user, approved=approved)
    return user


def approve_users(users) -> int:
    return Profile.objects.filter(user__in=users).update(approved=True)
