"""Shared fixtures: the three personas, the Ollama test double, and socket helpers."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import services
from chat.models import Conversation
from tests.fake_ollama import FakeOllama


@pytest.fixture(scope="session")
def _fake_server():
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def fake(_fake_server, settings):
    """The Ollama test double, reset for each test, and the app pointed at it."""
    _fake_server.reset()
    settings.OLLAMA_URL = _fake_server.url
    yield _fake_server
    _fake_server.reset()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    # The in-memory layer's queues belong to the event loop that made them; each async
    # test has its own loop, so each gets its own layer.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()  # rate-limit counters must not leak between tests


def _make_user(username: str, **extra):
    user = services.register_user(username, "a-long-password-123")
    for key, value in extra.items():
        setattr(user, key, value)
    if extra:
        user.save()
    return user


@pytest.fixture
def staff_user(db):
    # Signed up first, so this is the administrator; the other personas come after.
    return _make_user("admin")


@pytest.fixture
def user(db, staff_user):
    return _make_user("alice")


@pytest.fixture
def other_user(db, staff_user):
    return _make_user("mallory")


@pytest.fixture
def conversation(user):
    return Conversation.objects.create(owner=user, model="llama3.2")


def add_turns(conversation, *turns: dict):
    """Messages one after another on the branch on screen, as the app makes them."""
    parent = conversation.current_leaf
    for turn in turns:
        parent = conversation.messages.create(parent=parent, **turn)
    conversation.current_leaf = parent
    conversation.save(update_fields=["current_leaf"])
    return parent


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(conversation_uuid, user=None, *, origin=b"http://localhost"):
    """Open the chat socket through the full ASGI stack (origin check, session auth)."""
    from config.asgi import application

    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation_uuid}/", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator, timeout: float = 5.0) -> dict:
    return json.loads(await communicator.receive_from(timeout=timeout))


async def receive_until(communicator, kind: str, timeout: float = 10.0) -> list[dict]:
    """Every frame up to and including the first of type `kind`."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await receive(communicator, timeout=max(0.01, deadline - loop.time()))
        frames.append(frame)
        if frame["type"] == kind:
            return frames


def text_of(frames: list[dict]) -> str:
    """The answer text a browser would show after applying these frames."""
    text, seq = "", 0
    for frame in frames:
        if frame["type"] == "snapshot" and frame["message"]:
            text, seq = frame["message"]["content"], frame["message"].get("seq", 0)
        elif frame["type"] == "delta" and frame["seq"] > seq:
            assert frame["seq"] == seq + 1, "a delta was skipped"
            text, seq = text + frame.get("content", ""), frame["seq"]
    return text


def pytest_collection_modifyitems(items):
    # Playwright's sync API keeps an event loop running in the main thread while the
    # browser is open; asyncio tests must therefore all run before the browser tests.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
