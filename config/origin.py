"""The websocket Origin check: only the site's own origins (scheme, host and port).

Browsers send cookies with a websocket handshake from any page, so a socket must prove
it was opened by one of our own pages, as a form POST must pass Django's CSRF check.
Channels' AllowedHostsOriginValidator compares host names only, which lets a page on
another port or scheme of the same host (`http://localhost:9999`) drive a logged-in
user's socket. This check follows Django's CSRF origin check instead
(django.middleware.csrf.CsrfViewMiddleware._origin_verified, Django 5.2):

- the Origin equals this request's own origin: the scheme the socket was opened with
  (ws -> http, wss -> https, or https from the proxy's header when
  SECURE_PROXY_SSL_HEADER is set) and the Host header (or X-Forwarded-Host with
  USE_X_FORWARDED_HOST), which must be in ALLOWED_HOSTS; or
- it is in CSRF_TRUSTED_ORIGINS (exactly, or a `https://*.example.com` wildcard).

A missing or `null` Origin is refused: every browser sends one with a websocket
handshake, and `null` is what sandboxed frames and local files send.
"""

import logging
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class _Handshake(HttpRequest):
    """A websocket handshake as an HttpRequest, so that get_host() and is_secure()
    answer exactly as they do for a page of the site."""

    def __init__(self, scope: dict):
        super().__init__()
        # ASGI: the scheme of a websocket scope is "ws" unless the server says "wss".
        self._scope_scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        for name, value in scope.get("headers", []):
            # As django.core.handlers.asgi.ASGIRequest builds META from headers.
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            value = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{value}" if key in self.META else value
        server = scope.get("server") or ("", "")
        self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1] or "")

    def _get_scheme(self) -> str:
        return self._scope_scheme


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def origin_allowed(scope: dict) -> bool:
    """True when the websocket `scope`'s Origin is one of the site's own origins (rules
    in the module docstring). Reads the settings at every call, never at import."""
    origin = _header(scope, b"origin")
    if origin is None or origin == "null":
        return False
    request = _Handshake(scope)
    try:
        host = request.get_host()
    except DisallowedHost:
        # A page request with this Host would get a 400; so does its socket.
        return False
    if origin == f"{'https' if request.is_secure() else 'http'}://{host}":
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in (entry for entry in trusted if "*" not in entry):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, urlsplit(entry).netloc.lstrip("*"))
        for entry in trusted
        if "*" in entry and urlsplit(entry).scheme == parsed.scheme
    )


class SameOriginValidator:
    """ASGI middleware for websocket routes: hands sockets whose Origin passes
    `origin_allowed` to `application` and refuses the others' handshake (HTTP 403)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator is for websocket routes only")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        # Operators meet this when CSRF_TRUSTED_ORIGINS or the proxy's headers are off.
        logger.warning(
            "Websocket refused: Origin %.200r is not one of this site's origins (Host %.200r)",
            _header(scope, b"origin"),
            _header(scope, b"host"),
        )
        return await WebsocketDenier()(scope, receive, send)
