"""Helpers for the models socket tests: open /ws/models/ through the full ASGI stack."""

import asyncio
import json

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.conftest import session_cookie


async def open_models_socket(user=None, *, origin=b"http://localhost"):
    """Connect (origin check, session auth) and return the communicator."""
    from config.asgi import application

    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/models/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frames_until(communicator, predicate, timeout: float = 5.0) -> list[dict]:
    """Every frame up to and including the first for which `predicate(frame)` is true."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = await communicator.receive_from(timeout=max(0.01, deadline - loop.time()))
        frame = json.loads(text)
        frames.append(frame)
        if predicate(frame):
            return frames


def pull_ended(frame: dict) -> bool:
    return frame["type"] == "pull" and frame["pull"]["status"] != "running"


def server_frame(frame: dict) -> bool:
    return frame["type"] == "server"
