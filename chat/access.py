"""Accounts on hold: an account waiting for approval (SIGNUP_MODE=approval) or deactivated
may read the pending page and log out, and do nothing else, on any page, API or socket.

Enforced here, in one place for every URL and one for every socket, rather than view by
view: a view added later is covered without anyone remembering to (tests/test_account_hold.py
walks the URL resolver and the socket routes to keep it so). Anonymous visitors are not
this module's business: each view's `login_required` (or its own check) handles them.
"""

from asyncio import iscoroutinefunction

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware

from chat.services.accounts import can_chat

# URL names (namespace:name) an account on hold may use. Keep it this short.
OPEN_WHILE_ON_HOLD = frozenset({"chat:pending", "chat:logout"})

PENDING = "Your account is waiting for an administrator's approval."
DEACTIVATED = "This account has been deactivated. Ask an administrator if you need it back."

# The close code of a socket refused to an account on hold (docs/websocket.md).
CLOSE_ON_HOLD = 4403


def hold_reason(user) -> str | None:
    """Why a signed-in account may only read the pending page and log out (PENDING or
    DEACTIVATED), or None: approved, staff, or not signed in. One query (the profile)
    when `_needs_profile(user)`."""
    if user is None or not user.is_authenticated or can_chat(user):
        return None
    return DEACTIVATED if not user.is_active else PENDING


def _needs_profile(user) -> bool:
    # Async callers skip the thread hop (for the profile query) when the user alone tells.
    return user.is_authenticated and user.is_active and not user.is_staff


def _open_while_on_hold(path: str) -> bool:
    try:
        return resolve(path).view_name in OPEN_WHILE_ON_HOLD
    except Resolver404:
        return False


def _refusal(request, reason: str):
    """A page: to the pending page, which says why. A write or a script's request: 403,
    as JSON for scripts (they send Accept: application/json) and as the pending page for
    a plain form."""
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"error": reason}, status=403)
    if request.method in ("GET", "HEAD"):
        return redirect("chat:pending")
    return render(request, "registration/pending.html", {"hold_reason": reason}, status=403)


@sync_and_async_middleware
def accounts_on_hold(get_response):
    """Django middleware (after AuthenticationMiddleware): refuses every request of an
    account on hold except to OPEN_WHILE_ON_HOLD."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            user = await request.auser()
            if _needs_profile(user):
                reason = await sync_to_async(hold_reason)(user)
            else:
                reason = hold_reason(user)  # answered without the database
            if reason and not _open_while_on_hold(request.path_info):
                return await sync_to_async(_refusal)(request, reason)
            return await get_response(request)

    else:

        def middleware(request):
            reason = hold_reason(request.user)
            if reason and not _open_while_on_hold(request.path_info):
                return _refusal(request, reason)
            return get_response(request)

    return middleware


class SocketsOnHoldRefused:
    """ASGI middleware for every websocket route (inside AuthMiddlewareStack): an account on
    hold gets the handshake accepted, so that the browser sees the close code, then closed
    with CLOSE_ON_HOLD before any route or consumer runs."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is not None and _needs_profile(user):
            reason = await database_sync_to_async(hold_reason)(user)
        else:
            reason = hold_reason(user)  # answered without the database
        if reason:
            await self._refuse(receive, send)
            return
        return await self.inner(scope, receive, send)

    @staticmethod
    async def _refuse(receive, send):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_ON_HOLD})
