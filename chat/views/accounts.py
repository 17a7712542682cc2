"""Sign-up, log-in and log-out, with Django auth and session cookies.

Log-in throttling is django-axes (settings "auth"): it refuses a locked-out user name
and address in the authentication backend, for our form and Django admin's alike, and
answers with `locked_out` below.
"""

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from chat import access, services


def _signup_mode() -> str:
    # Until the first account exists sign-up is always open: it makes the administrator.
    if not User.objects.exists():
        return "first"
    return settings.SIGNUP_MODE


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat:home")
    mode = _signup_mode()
    if mode == "closed":
        return render(request, "registration/signup_closed.html", status=403)
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.register_user(
                form.cleaned_data["username"], form.cleaned_data["password1"]
            )
        except IntegrityError:  # the same name signed up a moment ago
            form.add_error("username", User._meta.get_field("username").error_messages["unique"])
            return render(request, "registration/signup.html", {"form": form, "mode": mode})
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        if user.is_superuser:
            messages.success(request, "Welcome! As the first user you are the administrator.")
        elif mode == "approval":
            return redirect("chat:pending")
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form, "mode": mode})


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["signup_open"] = _signup_mode() != "closed"
        return context


def pending(request):
    """Where an account on hold is sent (chat.access): why, and the way to log out. Open to
    everyone; an approved account goes on to the chat."""
    reason = access.hold_reason(request.user)
    if request.user.is_authenticated and reason is None:
        return redirect("chat:home")
    return render(request, "registration/pending.html", {"hold_reason": reason or access.PENDING})


def locked_out(request, *_unused):
    """The page for a refused log-in (AXES_LOCKOUT_CALLABLE): HTTP 429, in the app's
    style, naming the user name and when to try again.

    Axes passes (response, credentials) in one order when the request runs sync and
    another when it runs async, so both are ignored: the name comes from the form.
    """
    minutes = int(get_cool_off(request).total_seconds() // 60)
    context = {
        "username": request.POST.get("username", "")[:150],
        "limit": settings.AXES_FAILURE_LIMIT,
        "minutes": minutes,
        # Back to the form this came from: ours or /admin/login/?next=...
        "login_url": request.get_full_path(),
    }
    return render(request, "registration/locked_out.html", context, status=429)
