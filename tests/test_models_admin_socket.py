"""The models socket: who may open it, what it sends, and the one poller per process
that pushes Ollama's running models only when they change."""

import asyncio
import json

import pytest

from models_admin import running
from ollama_layer.client import OllamaClient
from tests.models_admin_helpers import frames_until, open_models_socket, server_frame

pytestmark = pytest.mark.django_db(transaction=True)


def ps_requests(fake) -> int:
    return sum(1 for r in fake.requests if r.path == "/api/ps")


def names(frame: dict) -> list[str]:
    return [model["name"] for model in frame["running"]]


@pytest.fixture
def poll_fast(settings):
    settings.MODELS_POLL_SECONDS = 0.05


# --- who may connect ------------------------------------------------------------------


async def test_an_anonymous_socket_is_refused(fake):
    communicator = await open_models_socket()
    assert (await communicator.receive_output(timeout=2))["code"] == 4401
    assert fake.requests == []


async def test_a_non_staff_socket_is_refused_without_data(fake, user):
    communicator = await open_models_socket(user)
    output = await communicator.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4403}
    await asyncio.sleep(0.1)
    assert fake.requests == []
    assert not running.poller().active


async def test_a_socket_from_another_origin_is_refused(fake, staff_user):
    with pytest.raises(AssertionError):
        await open_models_socket(staff_user, origin=b"http://evil.example")


# --- what staff get -------------------------------------------------------------------


async def test_staff_get_the_pulls_then_the_server_state(fake, staff_user):
    await OllamaClient(fake.url).load("llama3.2", "5m")
    communicator = await open_models_socket(staff_user)
    frames = await frames_until(communicator, server_frame)
    assert frames[0] == {"type": "pulls", "pulls": []}
    state = frames[-1]
    assert state["reachable"] is True and state["version"] == "0.12.6"
    assert state["url"] == fake.url
    assert names(state) == ["llama3.2:latest"]
    assert 295 <= state["running"][0]["expires_in"] <= 300
    assert "Unload" in state["running_html"] and "llama3.2:latest" in state["running_html"]
    assert "Ollama 0.12.6 is running" in state["status_html"]
    await communicator.send_to(text_data='{"type":"pull"}')
    error = json.loads(await communicator.receive_from())
    assert error["type"] == "error" and "only sends updates" in error["message"]
    await communicator.disconnect()


async def test_ollama_down_is_pushed_as_a_state_in_words(settings, staff_user):
    settings.OLLAMA_URL = "http://127.0.0.1:9"
    communicator = await open_models_socket(staff_user)
    state = (await frames_until(communicator, server_frame))[-1]
    assert state["reachable"] is False
    assert state["error"].startswith("Ollama is not reachable at http://127.0.0.1:9.")
    assert "Unknown while Ollama is unreachable." in state["running_html"]
    await communicator.disconnect()


async def test_one_poller_serves_every_socket_and_pushes_only_changes(fake, staff_user, poll_fast):
    sockets = [await open_models_socket(staff_user) for _ in range(3)]
    for communicator in sockets:
        await frames_until(communicator, server_frame)
    started, before = asyncio.get_running_loop().time(), ps_requests(fake)
    await asyncio.sleep(0.5)
    elapsed, polls = asyncio.get_running_loop().time() - started, ps_requests(fake) - before
    # One poller, not one per socket: about elapsed / interval reads, never three times it.
    assert 3 <= polls <= elapsed / 0.05 + 2
    # Nothing changed, so nothing was pushed.
    for communicator in sockets:
        assert await communicator.receive_nothing(timeout=0.05)

    # Something else loads a model: every page hears of it within a poll or two.
    await OllamaClient(fake.url).load("qwen3", "1h")
    for communicator in sockets:
        state = (await frames_until(communicator, server_frame, timeout=1))[-1]
        assert names(state) == ["qwen3:latest"]
        assert 3590 <= state["running"][0]["expires_in"] <= 3600

    for communicator in sockets:
        await communicator.disconnect()
    assert not running.poller().active
    stopped = ps_requests(fake)
    await asyncio.sleep(0.2)
    assert ps_requests(fake) == stopped  # nobody looks: nobody polls


async def test_a_late_socket_gets_the_current_state_at_once(fake, staff_user, settings):
    settings.MODELS_POLL_SECONDS = 30  # only the first reading happens during this test
    first = await open_models_socket(staff_user)
    await frames_until(first, server_frame)
    polls = ps_requests(fake)
    second = await open_models_socket(staff_user)
    state = (await frames_until(second, server_frame, timeout=1))[-1]
    assert state["reachable"] is True
    assert ps_requests(fake) == polls  # from the poller's memory, not a new request
    await first.disconnect()
    await second.disconnect()


async def test_load_and_unload_are_pushed_at_once(fake, staff_user, settings, async_client):
    settings.MODELS_POLL_SECONDS = 30  # so any push after the first comes from the actions
    communicator = await open_models_socket(staff_user)
    await frames_until(communicator, server_frame)
    await async_client.aforce_login(staff_user)
    headers = {"accept": "application/json"}

    response = await async_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "-1"}, headers=headers
    )
    assert response.status_code == 200
    state = (await frames_until(communicator, server_frame, timeout=1))[-1]
    assert names(state) == ["llama3.2:latest"]
    assert state["running"][0]["expires_in"] is None  # forever
    assert 'data-expires-in="forever"' in state["running_html"]

    response = await async_client.post("/models/unload/", {"name": "llama3.2"}, headers=headers)
    assert response.status_code == 200
    state = (await frames_until(communicator, server_frame, timeout=1))[-1]
    assert names(state) == []
    assert "No model is loaded right now." in state["running_html"]
    await communicator.disconnect()


async def test_delete_and_copy_tell_every_page_to_refresh_its_list(
    fake, staff_user, settings, async_client
):
    settings.MODELS_POLL_SECONDS = 30
    communicator = await open_models_socket(staff_user)
    await frames_until(communicator, server_frame)
    await async_client.aforce_login(staff_user)
    await async_client.post("/models/copy/", {"name": "llava", "destination": "llava-copy"})
    assert (await frames_until(communicator, lambda f: f["type"] == "local"))[-1] == {
        "type": "local",
        "host": fake.url,
    }
    await async_client.post("/models/delete/", {"name": "llava-copy"})
    await frames_until(communicator, lambda f: f["type"] == "local")
    assert "llava-copy:latest" not in fake.models
    await communicator.disconnect()


async def test_open_pages_learn_that_a_pull_died_with_its_process(fake, staff_user, settings):
    from channels.db import database_sync_to_async

    from models_admin import services

    settings.MODELS_POLL_SECONDS = 0.05
    settings.STALE_SECONDS = 1.0  # swept every half second
    communicator = await open_models_socket(staff_user)
    await frames_until(communicator, server_frame)
    # A pull whose task channel no live task of this process owns: its process died.
    pull, _ = await database_sync_to_async(services.start_pull)(staff_user, "qwen3", "gone!x")
    frame = (await frames_until(communicator, lambda f: f["type"] == "pull", timeout=3))[-1]
    assert frame["pull"]["id"] == str(pull.uuid)
    assert frame["pull"]["status"] == "interrupted"
    assert "The server stopped while this pull was running" in frame["pull"]["error"]
    await communicator.disconnect()
