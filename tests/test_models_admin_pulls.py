"""Pulls: a server-side job with a row, progress pushed to every staff page, cancel,
joining a running pull, Ollama's errors, and a reload in the middle."""

import asyncio
import re

import pytest
from channels.db import database_sync_to_async

from models_admin import pulls
from models_admin.models import Pull
from tests.models_admin_helpers import frames_until, open_models_socket, pull_ended

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"accept": "application/json"}
TINYLLAMA_BYTES = 40_000_000 + 2_000 + 500  # the double's three layers


@pytest.fixture(autouse=True)
def fast_pulls(settings):
    settings.PULL_FRAME_MS = 50
    settings.PULL_CHECKPOINT_SECONDS = 0.1
    settings.MODELS_POLL_SECONDS = 30  # the poller is not under test here


@pytest.fixture
async def staff(async_client, staff_user):
    await async_client.aforce_login(staff_user)
    return async_client


@pytest.fixture(autouse=True)
async def _no_pull_outlives_its_test():
    yield
    tasks = [job.task for job in list(pulls._jobs.values()) if job.task]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def pull_lines(fake) -> int:
    """How many progress lines the double sends for tinyllama at its current settings."""
    return 1 + 3 * (fake.pull_steps + 1) + 2 + 1


def pull_requests(fake) -> list:
    return [r for r in fake.requests if r.path == "/api/pull"]


async def start(client, name: str):
    response = await client.post("/models/pull/", {"model": name}, headers=JSON)
    return response.status_code, response.json()


async def row(pull_id: str) -> Pull:
    return await database_sync_to_async(Pull.objects.select_related("requested_by").get)(
        uuid=pull_id
    )


async def test_progress_is_relayed_summed_over_layers_and_throttled(fake, staff, staff_user):
    fake.pull_delay = 0.02
    socket = await open_models_socket(staff_user)
    status, body = await start(staff, "tinyllama")
    assert status == 202
    assert body["message"] == "Pulling “tinyllama:latest”…"
    pull_id = body["pull"]["id"]

    frames = await frames_until(socket, pull_ended, timeout=10)
    progress = [f["pull"] for f in frames if f["type"] == "pull"]
    assert {p["id"] for p in progress} == {pull_id}
    # Throttled: far fewer frames than Ollama's lines, yet the bar moved several times.
    assert len(progress) < pull_lines(fake) / 2
    moving = [p for p in progress if p["status"] == "running" and p["total"]]
    assert len(moving) >= 3
    done_bytes = [p["completed"] for p in moving]
    assert done_bytes == sorted(done_bytes) and done_bytes[0] < done_bytes[-1]
    # Summed over the layers: the first layer alone is 40 MB of 40.0025 MB.
    assert max(p["total"] for p in moving) == TINYLLAMA_BYTES
    assert any(p["speed"] and p["speed"] > 0 and p["eta"] is not None for p in moving)
    final = progress[-1]
    assert final["status"] == "done" and final["error"] == ""
    assert final["completed"] == final["total"] == TINYLLAMA_BYTES
    assert final["by"] == "admin"
    # Every page showing that host is told to refresh its list of local models.
    assert (await frames_until(socket, lambda f: f["type"] == "local"))[-1] == {
        "type": "local",
        "host": fake.url,
    }

    saved = await row(pull_id)
    assert (saved.status, saved.completed, saved.total) == (
        "done",
        TINYLLAMA_BYTES,
        TINYLLAMA_BYTES,
    )
    assert saved.requested_by == staff_user and saved.finished is not None
    assert saved.task_channel == "" and saved.host == fake.url
    assert "tinyllama:latest" in fake.models
    assert pull_requests(fake)[0].body == {
        "model": "tinyllama:latest",
        "insecure": False,
        "stream": True,
    }
    await socket.disconnect()


async def test_an_unknown_model_fails_with_ollamas_own_message(fake, staff, staff_user):
    socket = await open_models_socket(staff_user)
    status, body = await start(staff, "no-such-model")
    assert status == 202
    final = (await frames_until(socket, pull_ended))[-1]["pull"]
    assert final["status"] == "failed"
    assert final["error"] == (
        "Could not pull “no-such-model:latest”. "
        "Ollama said: pull model manifest: file does not exist"
    )
    saved = await row(body["pull"]["id"])
    assert saved.status == "failed" and saved.error == final["error"]
    await socket.disconnect()


async def test_ollama_down_or_busy_fails_the_pull_in_words(fake, staff, staff_user, settings):
    socket = await open_models_socket(staff_user)
    fake.busy = True
    await start(staff, "tinyllama")
    final = (await frames_until(socket, pull_ended))[-1]["pull"]
    assert final["status"] == "failed"
    assert "Ollama is busy right now" in final["error"]

    settings.OLLAMA_URL = "http://127.0.0.1:9"
    await start(staff, "tinyllama")
    final = (await frames_until(socket, pull_ended))[-1]["pull"]
    assert final["status"] == "failed"
    assert (
        "Ollama is not reachable at http://127.0.0.1:9. Check that Ollama is running"
        in final["error"]
    )
    await socket.disconnect()


async def test_cancel_closes_the_stream_to_ollama(fake, staff, staff_user):
    fake.pull_delay = 0.05
    socket = await open_models_socket(staff_user)
    _, body = await start(staff, "tinyllama")
    pull_id = body["pull"]["id"]
    await frames_until(socket, lambda f: f["type"] == "pull" and f["pull"]["completed"] > 0)

    response = await staff.post(f"/models/pulls/{pull_id}/cancel/", headers=JSON)
    assert response.json() == {"ok": True, "message": "Cancelling the pull of “tinyllama:latest”…"}
    final = (await frames_until(socket, pull_ended))[-1]["pull"]
    assert final["status"] == "cancelled"
    assert 0 < final["completed"] < TINYLLAMA_BYTES
    assert await asyncio.to_thread(fake.wait_for_disconnect, 3)
    assert pull_requests(fake)[0].disconnected
    assert "tinyllama:latest" not in fake.models
    assert (await row(pull_id)).status == "cancelled"

    response = await staff.post(f"/models/pulls/{pull_id}/cancel/", headers=JSON)
    assert response.status_code == 409
    assert "has already ended (Cancelled)" in response.json()["message"]
    await socket.disconnect()


async def test_a_second_pull_of_the_same_model_joins_the_first(fake, staff, staff_user):
    fake.pull_delay = 0.05
    _, first = await start(staff, "tinyllama")
    status, second = await start(staff, "TinyLlama:latest")
    assert status == 200
    assert second["pull"]["id"] == first["pull"]["id"]
    assert second["message"] == (
        "“tinyllama:latest” is already being pulled (started by admin); showing that pull."
    )
    assert await database_sync_to_async(Pull.objects.count)() == 1
    await asyncio.sleep(0.1)
    assert len(pull_requests(fake)) == 1
    assert len(pulls._jobs) == 1  # the joining request left no task or channel behind


async def test_a_reload_mid_pull_shows_the_running_job(fake, staff, staff_user):
    fake.pull_delay = 0.05
    _, body = await start(staff, "tinyllama")
    pull_id = body["pull"]["id"]
    await asyncio.sleep(0.5)  # a few layers' lines and checkpoints

    page = (await staff.get("/models/")).content.decode()
    # The bar as saved: the fraction that never goes back (models_admin/progress.py).
    shown = re.search(
        rf'<li class="pull" data-pull-id="{pull_id}" data-status="running" '
        r'data-fraction="([\d.]+)">',
        page,
    )
    assert 'data-testid="cancel-pull"' in page
    bar = re.search(r'<progress class="pull-bar" max="1" value="([\d.]+)">(\d+)%', page)
    assert shown[1] == bar[1] and 0 < float(bar[1]) < 1 and 0 < int(bar[2]) < 100
    assert int(bar[2]) == int(float(bar[1]) * 100 + 1e-9)

    # A page that opens now (another staff member, another tab) gets the job too: its
    # saved state, then the task's live one with the speed.
    socket = await open_models_socket(staff_user)
    frames = await frames_until(socket, lambda f: f["type"] == "pull")
    assert frames[0]["type"] == "pulls"
    assert [(p["id"], p["status"]) for p in frames[0]["pulls"]] == [(pull_id, "running")]
    assert frames[0]["pulls"][0]["completed"] > 0
    assert frames[-1]["pull"]["speed"] > 0
    final = (await frames_until(socket, pull_ended, timeout=10))[-1]["pull"]
    assert final["status"] == "done"
    await socket.disconnect()


async def test_a_pull_outlives_the_page_that_started_it(fake, staff, staff_user):
    socket = await open_models_socket(staff_user)
    _, body = await start(staff, "tinyllama")
    await socket.disconnect()  # the tab is closed at once
    await asyncio.sleep(0.05)
    for _ in range(100):
        if (await row(body["pull"]["id"])).status != "running":
            break
        await asyncio.sleep(0.05)
    assert (await row(body["pull"]["id"])).status == "done"
    assert "tinyllama:latest" in fake.models


async def test_pulling_an_installed_model_checks_it_and_finishes(fake, staff, staff_user):
    socket = await open_models_socket(staff_user)
    await start(staff, "llama3.2")
    final = (await frames_until(socket, pull_ended))[-1]["pull"]
    assert final["status"] == "done"
    assert final["completed"] == final["total"] == fake.models["llama3.2:latest"]["size"]
    await socket.disconnect()


async def test_the_database_allows_one_running_pull_per_model(staff_user):
    from django.db import IntegrityError

    create = database_sync_to_async(Pull.objects.create)
    await create(model="x:latest", key="x:latest")
    with pytest.raises(IntegrityError):
        await create(model="X:latest", key="x:latest")
