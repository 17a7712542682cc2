"""Accounts: sign-up (the first account is the administrator) and approval."""

from django.conf import settings
from django.contrib.auth import get_user_model
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


@transaction.atomic
def register_user(username: str, password: str, email: str = ""):
    """Create an account. The very first one becomes the administrator."""
    User = get_user_model()
    # Lock the table's first row so two simultaneous first sign-ups can't both be admin.
    first = not User.objects.select_for_update().exists()
    user = User.objects.create_user(username=username, password=password, email=email)
    if first:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    approved = first or settings.SIGNUP_MODE != "approval"
    Profile.objects.create(user=user, approved=approved)
    return user


def approve_users(users) -> int:
    return Profile.objects.filter(user__in=users).update(approved=True)
