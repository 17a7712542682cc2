"""Accounts on hold (chat/access.py): an account waiting for approval, or deactivated, may
read the pending page and log out, and nothing else, on every page, API and socket.

The URLs and socket routes below come from the resolvers, not from a list kept by hand:
a view or route added later is tested here without anyone adding it, and fails unless it
is refused to accounts on hold or named in chat.access.OPEN_WHILE_ON_HOLD."""

import io
import re
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.html import escape
from PIL import Image

from chat import access, services
from chat.models import Attachment, Conversation, Profile
from config.routing import websocket_urlpatterns
from tests.conftest import connect, receive, session_cookie

# --- every URL and socket route, from the resolvers -----------------------------------


def _qualified(namespace: str, name: str | None) -> str | None:
    return f"{namespace}:{name}" if namespace and name else name


def _walk(patterns, prefix=(), namespace=""):
    """(the patterns from the root to each endpoint, its namespace:name or None)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = _qualified(namespace, pattern.namespace) or namespace
            yield from _walk(pattern.url_patterns, (*prefix, pattern.pattern), inner)
        elif isinstance(getattr(pattern, "callback", None), URLRouter):
            yield from _walk(pattern.callback.routes, (*prefix, pattern.pattern), namespace)
        else:
            yield (*prefix, pattern.pattern), _qualified(namespace, pattern.name)


HTTP_ROUTES = list(_walk(get_resolver().url_patterns))
SOCKET_ROUTES = list(_walk(websocket_urlpatterns))


def route_string(parts) -> str:
    """As Django's ResolverMatch.route joins them (a nested regex loses its "^")."""
    return "".join(
        str(part) if i == 0 else str(part).removeprefix("^") for i, part in enumerate(parts)
    )


def _route_id(route) -> str:
    return route_string(route[0]) or "/"


_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>")


def _value(name: str, converter: str, objects: dict) -> str:
    """An example for one URL parameter: the on-hold account's own objects where the URL
    names one (so a refusal can't just be a 404 for a stranger's object)."""
    if name in objects:
        return str(objects[name])
    return {"uuid": str(uuid.uuid4()), "path": "llava" if name == "name" else "1"}.get(
        converter, "1"
    )


def _closing_paren(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    raise AssertionError(f"unbalanced regex {text}")


def _regex_example(pattern: RegexPattern, objects: dict) -> str:
    """A string the regex matches, for the simple regexes URL patterns use: each named
    group replaced by the first candidate its own sub-pattern takes."""
    text = str(pattern).removeprefix("^").removesuffix("$")
    while found := _REGEX_GROUP.search(text):
        end = _closing_paren(text, found.start())
        body = text[found.end() : end]
        candidates = [str(objects.get(found["name"], "")), "chat", "x", "1"]
        value = next((c for c in candidates if c and re.fullmatch(body, c)), None)
        assert value is not None, f"no example for {pattern}"
        text = text[: found.start()] + value + text[end + 1 :]
    return text


def example_path(parts, objects: dict) -> str:
    path = ""
    for part in parts:
        if isinstance(part, RoutePattern):
            path += _PARAMETER.sub(
                lambda m: _value(m["name"], m["converter"] or "str", objects), str(part)
            )
        else:
            path += _regex_example(part, objects)
    return "/" + path


# --- the personas and their things ----------------------------------------------------


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


def _objects_of(owner) -> dict:
    """A conversation with a message and an image, e.g. from before approval was taken
    back: what a write would change."""
    conversation = Conversation.objects.create(owner=owner, model="llama3.2", title="Mine")
    message = conversation.messages.create(role="user", content="Hello")
    conversation.current_leaf = message
    conversation.save(update_fields=["current_leaf"])
    image = Attachment(conversation=conversation, message=message, content_type="image/png", size=3)
    image.file.save("upload", ContentFile(_png()), save=True)
    return {
        "conversation_uuid": conversation.uuid,
        "message_uuid": message.uuid,
        "attachment_uuid": image.uuid,
    }


@pytest.fixture
def pending(db, staff_user, settings):
    settings.SIGNUP_MODE = "approval"
    user = services.register_user("newbie", "a-long-password-123")
    assert not Profile.objects.get(user=user).approved
    return user


@pytest.fixture
def deactivated(user):
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def everything(settings) -> dict:
    """Every row of every table (but sessions, and django-axes' record of failed log-ins,
    which a refused log-in is meant to write) and every stored file: what a refused
    request must leave as it was."""
    rows = {
        model._meta.label: sorted(map(repr, model.objects.values()))
        for model in apps.get_models()
        if model is not Session and model._meta.app_label != "axes"
    }
    files = {
        str(path): path.read_bytes() for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()
    }
    return {"rows": rows, "files": files}


def _write_attempt() -> dict:
    """A body that would do something at any write URL: an image, an import file, a
    title, a model, flags, settings."""
    export = b'{"format": "ollama-chat", "version": 1, "conversations": [{"title": "In", "messages": []}]}'
    return {
        "image": SimpleUploadedFile("a.png", _png(), content_type="image/png"),
        "file": SimpleUploadedFile("export.json", export, content_type="application/json"),
        "title": "Renamed",
        "model": "llava",
        "name": "llava",
        "source": "llava",
        "destination": "copy",
        "pinned": "1",
        "archived": "1",
        "system_prompt": "Be evil",
        "username": "admin",
        "password": "wrong",
    }


def _requests(client, path):
    """(what, response) for each way of calling a URL: a page, a script, a form, a
    script's write, a delete."""
    json = {"Accept": "application/json"}
    yield "GET page", client.get(path)
    yield "GET script", client.get(path, headers=json)
    yield "POST form", client.post(path, _write_attempt())
    yield "POST script", client.post(path, _write_attempt(), headers=json)
    yield "DELETE script", client.delete(path, headers=json)


# --- HTTP -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", HTTP_ROUTES, ids=_route_id)
def test_an_account_waiting_for_approval_can_do_nothing_but_wait(route, pending, fake, settings):
    parts, name = route
    path = example_path(parts, _objects_of(pending))
    assert resolve(path).route == route_string(parts), path  # the example is this URL's
    client = Client()
    client.force_login(pending)
    before = everything(settings)
    if name == "chat:pending":
        assert escape(access.PENDING) in client.get(path).content.decode()
        return
    if name == "chat:logout":
        assert client.post(path)["Location"] == "/login/"
        assert not Session.objects.exists()
        return
    assert name not in access.OPEN_WHILE_ON_HOLD, "say above what it may do there"
    for what, response in _requests(client, path):
        if what == "GET page":
            assert response.status_code == 302, what
            assert response["Location"] == "/pending/", what
        elif "script" in what:
            assert response.status_code == 403, what
            assert response.json() == {"error": access.PENDING}, what
        else:
            assert response.status_code == 403, what
            assert escape(access.PENDING) in response.content.decode(), what
    assert everything(settings) == before
    assert fake.requests == []  # not even a read from Ollama
    assert Session.objects.exists()  # refused, not logged out


# Pages meant for visitors who are not signed in; a deactivated account is one of them
# (Django's ModelBackend no longer accepts its session).
FOR_VISITORS = {
    "chat:login",
    "chat:signup",
    "chat:pending",
    "chat:logout",
    "admin:login",
    "admin:logout",
}


@pytest.mark.django_db
@pytest.mark.parametrize("route", HTTP_ROUTES, ids=_route_id)
def test_a_deactivated_account_can_do_nothing_either(route, deactivated, fake, settings):
    parts, name = route
    path = example_path(parts, _objects_of(deactivated))
    client = Client()
    client.force_login(deactivated)  # its session from before it was deactivated
    before = everything(settings)
    for what, response in _requests(client, path):
        if name in FOR_VISITORS:
            continue  # what anyone may see; but the body above must write nothing either
        if response.status_code == 302:
            assert response["Location"].split("?")[0] in ("/login/", "/admin/login/"), what
        else:
            assert response.status_code in (401, 403, 404, 405), (what, response.status_code)
    assert everything(settings) == before
    assert fake.requests == []


@pytest.mark.django_db
def test_every_url_open_while_on_hold_exists():
    names = {name for _, name in HTTP_ROUTES}
    assert access.OPEN_WHILE_ON_HOLD <= names


@pytest.mark.django_db
def test_the_pending_page_says_why_and_offers_only_to_log_out(pending):
    client = Client()
    client.force_login(pending)
    page = client.get("/pending/")
    assert page.status_code == 200
    html = page.content.decode()
    assert escape(access.PENDING) in html
    assert 'data-testid="logout"' in html
    assert "/settings/defaults/" not in html  # no link that only leads back here
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not Session.objects.exists()
    assert client.get("/").status_code == 302  # to the log-in page now
    assert client.get("/")["Location"].startswith("/login/")


@pytest.mark.django_db
def test_once_approved_the_pending_page_leads_to_the_chat(pending):
    client = Client()
    client.force_login(pending)
    services.approve_users(User.objects.filter(pk=pending.pk))
    assert client.get("/pending/")["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/c/new/", {"model": "llama3.2"}).status_code == 201


@pytest.mark.django_db
def test_taking_approval_back_closes_everything_again(user, conversation):
    client = Client()
    client.force_login(user)
    assert client.get(f"/c/{conversation.uuid}/").status_code == 200
    Profile.objects.filter(user=user).update(approved=False)
    assert client.get(f"/c/{conversation.uuid}/")["Location"] == "/pending/"
    assert client.post(f"/c/{conversation.uuid}/rename/", {"title": "x"}).status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == ""


@pytest.mark.django_db
def test_a_deactivated_account_that_can_still_sign_in_is_held_too(deactivated, settings):
    # With a backend that lets inactive users in (AllowAllUsersModelBackend), chat.access
    # is what keeps them out.
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    client = Client()
    client.force_login(deactivated)
    assert client.get("/")["Location"] == "/pending/"
    assert escape(access.DEACTIVATED) in client.get("/pending/").content.decode()
    refused = client.post(
        "/import/", {"file": _write_attempt()["file"]}, headers={"Accept": "application/json"}
    )
    assert refused.status_code == 403 and refused.json() == {"error": access.DEACTIVATED}
    assert Conversation.objects.count() == 0


@pytest.mark.django_db
def test_staff_and_approved_accounts_are_not_held(user, staff_user, conversation):
    for person, path in ((user, f"/c/{conversation.uuid}/"), (staff_user, "/admin/")):
        client = Client()
        client.force_login(person)
        assert client.get(path).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_the_hold_works_the_same_under_asgi(user, pending, fake):
    # (user first: signed up before approval mode was switched on by `pending`)
    # Daphne runs the middleware's async branch; the tests above drive the sync one.
    held = AsyncClient()
    await held.aforce_login(pending)
    assert (await held.get("/"))["Location"] == "/pending/"
    models = await held.get("/api/models/", headers={"Accept": "application/json"})
    assert models.status_code == 403 and models.json() == {"error": access.PENDING}
    refused = await held.post("/import/", {"file": _write_attempt()["file"]})
    assert refused.status_code == 403 and escape(access.PENDING) in refused.content.decode()
    assert escape(access.PENDING) in (await held.get("/pending/")).content.decode()
    assert await Conversation.objects.acount() == 0 and fake.requests == []

    approved = AsyncClient()
    await approved.aforce_login(user)
    assert (await approved.get("/")).status_code == 200
    assert (await approved.get("/api/models/")).status_code == 200


# --- sockets --------------------------------------------------------------------------


async def _open(path: str, user) -> WebsocketCommunicator:
    from config.asgi import application

    cookie = await database_sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", f"sessionid={cookie}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected  # accepted, so that the browser sees why it is closed
    return communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", SOCKET_ROUTES, ids=_route_id)
async def test_every_socket_is_closed_to_an_account_waiting_for_approval(route, pending, settings):
    parts, _ = route
    objects = await database_sync_to_async(_objects_of)(pending)
    communicator = await _open(example_path(parts, objects), pending)
    assert await communicator.receive_output(timeout=2) == {
        "type": "websocket.close",
        "code": access.CLOSE_ON_HOLD,
    }
    assert await communicator.receive_nothing()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", SOCKET_ROUTES, ids=_route_id)
async def test_every_socket_is_closed_to_a_deactivated_account(route, user, settings):
    parts, _ = route
    objects = await database_sync_to_async(_objects_of)(user)
    user.is_active = False
    await database_sync_to_async(user.save)(update_fields=["is_active"])
    communicator = await _open(example_path(parts, objects), user)
    closed = await communicator.receive_output(timeout=2)
    assert closed["type"] == "websocket.close" and closed["code"] in (4401, access.CLOSE_ON_HOLD)
    assert await communicator.receive_nothing()


@pytest.mark.django_db(transaction=True)
async def test_approval_taken_back_while_a_socket_is_open_stops_sending(fake, user, conversation):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await database_sync_to_async(Profile.objects.filter(user=user).update)(approved=False)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2", "client_id": "c1"})
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == "pending"
    assert fake.chat_requests() == []
    assert await database_sync_to_async(conversation.messages.count)() == 0
    await ws.disconnect()
