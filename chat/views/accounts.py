"""Sign-up, log-in and log-out, with Django auth and session cookies."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from chat import limits, services

LOGIN_WINDOW = 15 * 60


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


class ThrottledAuthenticationForm(AuthenticationForm):
    """Refuses to check passwords after too many failures for a name or an address."""

    def clean(self):
        username = (self.data.get("username") or "").lower()[:150]
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        keys = [f"login:user:{username}", f"login:addr:{address}"]
        limit = settings.LOGIN_ATTEMPTS_LIMIT
        if not all(limits.peek(key, limit, LOGIN_WINDOW) for key in keys):
            raise self.get_invalid_login_error().__class__(
                "Too many failed log-in attempts. Wait a few minutes and try again.",
                code="throttled",
            )
        try:
            return super().clean()
        except Exception:
            for key in keys:
                limits.hit(key, limit, LOGIN_WINDOW)
            raise


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["signup_open"] = _signup_mode() != "closed"
        return context


def pending(request):
    return render(request, "registration/pending.html")
