"""Response headers that Django 5.2 does not set by itself."""

from asyncio import iscoroutinefunction

from django.utils.decorators import sync_and_async_middleware

# Scripts and styles only from our own origin: model output can never run code even if
# a sanitizer bug let markup through. Websockets are same-origin ('self' covers ws/wss).
_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def _add_csp(request, response):
    # Django's admin uses inline scripts/styles in a few places; leave it alone.
    if not request.path.startswith("/admin/"):
        response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


@sync_and_async_middleware
def content_security_policy(get_response):
    # Both flavours so that Daphne never needs a thread hop for this middleware.
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _add_csp(request, await get_response(request))

    else:

        def middleware(request):
            return _add_csp(request, get_response(request))

    return middleware
