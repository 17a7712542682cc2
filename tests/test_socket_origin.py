"""The websocket Origin check (config/origin.py): only the site's own origins, by scheme,
host and port, as Django's CSRF check; on every socket route."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["chat", "models"])
def route(request, fake, conversation, staff_user):
    """(path, user) of each socket: a conversation's owner, and staff on /ws/models/."""
    if request.param == "chat":
        return f"/ws/conversations/{conversation.uuid}/", conversation.owner
    return "/ws/models/", staff_user


async def _opens(route, origin: str | None, host: str = "localhost", *, scheme=None, extra=()):
    """Whether the socket at `route` opens for a page at `origin` (None: no header)."""
    from config.asgi import application

    path, user = route
    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"host", host.encode()), (b"cookie", f"sessionid={cookie}".encode()), *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    if scheme:
        communicator.scope["scheme"] = scheme  # what an ASGI server says for a TLS socket
    connected, _ = await communicator.connect()
    if connected:
        await communicator.receive_from(timeout=5)  # the first frame: the socket works
        await communicator.disconnect()
    return connected


# --- the site's own origin -----------------------------------------------------------


async def test_a_page_of_the_site_itself_opens_the_socket(route):
    assert await _opens(route, "http://localhost:8000", "localhost:8000")
    assert await _opens(route, "http://localhost", "localhost")


async def test_a_page_on_another_port_of_the_same_host_is_refused(route):
    assert not await _opens(route, "http://localhost:9999", "localhost:8000")
    assert not await _opens(route, "http://localhost:9999", "localhost")
    assert not await _opens(route, "http://localhost:8000", "localhost")


async def test_a_page_on_another_scheme_of_the_same_host_is_refused(route):
    assert not await _opens(route, "https://localhost", "localhost")  # socket is ws://
    assert not await _opens(route, "http://localhost", "localhost", scheme="wss")
    assert await _opens(route, "https://localhost", "localhost", scheme="wss")


async def test_behind_a_tls_proxy_the_forwarded_scheme_is_the_sockets(route, settings):
    # BEHIND_PROXY=true: nginx ends TLS and says so in X-Forwarded-Proto.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    https = [(b"x-forwarded-proto", b"https")]
    assert await _opens(route, "https://chat.example.com", "chat.example.com", extra=https)
    assert not await _opens(route, "http://chat.example.com", "chat.example.com", extra=https)
    assert not await _opens(route, "https://chat.example.com:4443", "chat.example.com", extra=https)


async def test_a_page_of_another_host_is_refused(route):
    assert not await _opens(route, "http://evil.example", "localhost")
    assert not await _opens(route, "http://localhost.evil.example", "localhost")


async def test_a_host_not_in_allowed_hosts_is_refused_even_from_its_own_page(route):
    # DNS rebinding: evil.example now resolves to this server, so its page's socket
    # arrives with Host and Origin both evil.example.
    assert not await _opens(route, "http://evil.example", "evil.example")


async def test_a_missing_or_null_origin_is_refused(route):
    assert not await _opens(route, None, "localhost")
    assert not await _opens(route, "null", "localhost")


# --- CSRF_TRUSTED_ORIGINS ----------------------------------------------------------------


async def test_an_origin_in_csrf_trusted_origins_is_accepted(route, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    assert await _opens(route, "https://chat.example.com", "localhost:8000")
    assert not await _opens(route, "http://chat.example.com", "localhost:8000")
    assert not await _opens(route, "https://chat.example.com:4443", "localhost:8000")


async def test_a_wildcard_csrf_trusted_origin_covers_subdomains_of_its_scheme(route, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert await _opens(route, "https://eu.example.com", "localhost")
    assert not await _opens(route, "http://eu.example.com", "localhost")
    assert not await _opens(route, "https://eu.example.org", "localhost")
