"""Ollama host URLs are internal addresses and may carry credentials
(`http://user:secret@host:11434`): only staff see them, never with credentials, and no
page, frame, error, row or log line shows a secret (shared/design.md, "Security rules")."""

import logging

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Conversation
from models_admin.models import Pull
from ollama_layer import hosts
from tests.conftest import connect, receive, receive_until
from tests.models_admin_helpers import frames_until, open_models_socket, pull_ended

SECRET = "s3cret"
TOKEN = "t0k3n"
DEAD = f"http://ops:{SECRET}@127.0.0.1:9/?token={TOKEN}"
JSON = {"HTTP_ACCEPT": "application/json"}


def credentialed(url: str) -> str:
    """`http://127.0.0.1:1234` -> `http://ops:s3cret@127.0.0.1:1234`."""
    return url.replace("://", f"://ops:{SECRET}@", 1)


def leaks(text: str) -> list[str]:
    return [word for word in (SECRET, TOKEN, "ops:", "%40") if word in text]


@pytest.fixture(autouse=True)
def _fresh_pools():
    hosts._pools.clear()
    yield
    hosts._pools.clear()


@pytest.fixture(autouse=True)
def every_log_line(caplog):
    """Everything logged during the test, whatever the configured levels (httpx too)."""
    loggers = [logging.getLogger(name) for name in ("", "httpx", "httpcore", "django", "daphne")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    # In teardown caplog.text holds the teardown's records only: read each phase's.
    logged = [r.getMessage() for when in ("setup", "call") for r in caplog.get_records(when)]
    assert not leaks("\n".join(logged)), "a log line showed a credential"


@pytest.fixture
def two_hosts(fake, settings):
    """The double behind credentials, then a dead host with credentials and a token."""
    settings.OLLAMA_URLS = [credentialed(fake.url), DEAD]
    return fake


@pytest.fixture
def pending_user(db, staff_user, settings):
    settings.SIGNUP_MODE = "approval"
    user = services.register_user("newbie", "a-long-password-123")
    assert not services.can_chat(user)
    return user


# --- /api/models/ ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_list_is_refused_to_a_pending_account(client, two_hosts, pending_user):
    client.force_login(pending_user)
    response = client.get("/api/models/", headers={"Accept": "application/json"})
    assert response.status_code == 403
    text = response.content.decode()
    assert "127.0.0.1" not in text and not leaks(text)
    assert not two_hosts.requests  # refused before Ollama was asked


@pytest.mark.django_db
def test_the_model_list_gives_no_host_to_non_staff(client, two_hosts, user):
    client.force_login(user)
    response = client.get("/api/models/")
    assert response.status_code == 200
    body = response.json()
    assert {m["name"] for m in body["models"]} >= {"llama3.2:latest", "qwen3:latest"}
    assert all("hosts" not in model for model in body["models"])
    text = response.content.decode()
    assert "127.0.0.1" not in text and not leaks(text)


@pytest.mark.django_db
def test_staff_see_the_hosts_without_credentials(client, two_hosts, staff_user):
    client.force_login(staff_user)
    response = client.get("/api/models/")
    listed = {m["name"]: m for m in response.json()["models"]}
    assert listed["llama3.2:latest"]["hosts"] == [two_hosts.url]
    assert not leaks(response.content.decode())
    # Ollama still gets the credentials, as a header (for a proxy in front of it).
    assert two_hosts.requests[-1].authorization == "Basic b3BzOnMzY3JldA=="  # ops:s3cret


@pytest.mark.django_db
def test_ollama_down_is_explained_without_the_address_to_non_staff(
    client, settings, user, staff_user
):
    settings.OLLAMA_URL = DEAD
    client.force_login(user)
    for url in ("/api/models/", "/api/models/llama3.2/"):
        response = client.get(url)
        assert response.status_code == 503
        assert response.json()["error"].startswith("The Ollama server is not reachable.")
        assert "127.0.0.1" not in response.content.decode()
    client.force_login(staff_user)
    for url in ("/api/models/", "/api/models/llama3.2/"):
        response = client.get(url)
        assert response.json()["error"].startswith(
            "Ollama is not reachable at http://127.0.0.1:9/."
        )
        assert not leaks(response.content.decode())


# --- the chat socket ------------------------------------------------------------------


async def failed_answer(owner) -> dict:
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=owner, model="llama3.2"
    )
    ws = await connect(conversation.uuid, owner)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    done = (await receive_until(ws, "done"))[-1]
    await ws.disconnect()
    assert done["status"] == "failed"
    return done


@pytest.mark.django_db(transaction=True)
async def test_an_unreachable_host_is_not_named_to_a_user_but_is_to_staff(
    settings, user, staff_user
):
    settings.OLLAMA_URL = DEAD
    done = await failed_answer(user)
    assert done["error"] == (
        "The Ollama server is not reachable. Check that Ollama is running, then continue or "
        "try again."
    )
    done = await failed_answer(staff_user)
    assert done["error"] == (
        "Ollama is not reachable at http://127.0.0.1:9/. Check that Ollama is running, then "
        "continue or try again."
    )


@pytest.mark.django_db(transaction=True)
async def test_a_model_on_a_down_host_is_not_named_to_a_user(settings, fake, user, staff_user):
    settings.OLLAMA_URLS = [DEAD, credentialed(fake.url)]
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model="ghost"
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "ghost"})
    done = (await receive_until(ws, "done"))[-1]
    await ws.disconnect()
    assert "not reachable" in done["error"]
    assert "127.0.0.1" not in done["error"]


# --- the models pages, frames and rows (staff only) -----------------------------------


@pytest.mark.django_db
def test_the_models_pages_show_staff_the_hosts_without_credentials(client, two_hosts, staff_user):
    client.force_login(staff_user)
    pages = [
        "/models/",
        "/models/?host=1",
        "/models/?partial=hosts",
        "/models/?partial=local",
        "/models/show/?model=llama3.2",
        "/models/show/?model=llama3.2&host=1",
        "/models/delete/?model=llama3.2",
    ]
    for url in pages:
        text = client.get(url).content.decode()
        assert not leaks(text), url
    page = client.get("/models/").content.decode()
    assert f'data-host-url="{two_hosts.url}"' in page
    assert 'data-host-url="http://127.0.0.1:9/"' in page
    assert "Ollama is not reachable at http://127.0.0.1:9/." in page
    response = client.post("/models/load/", {"name": "llama3.2", "host": "1"}, **JSON)
    assert response.status_code == 503 and not leaks(response.content.decode())
    assert "Could not load “llama3.2” on http://127.0.0.1:9/." in response.json()["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_pull_records_and_shows_its_host_without_credentials(
    async_client, two_hosts, staff_user, settings
):
    settings.PULL_FRAME_MS = 50
    await async_client.aforce_login(staff_user)
    socket = await open_models_socket(staff_user)
    response = await async_client.post(
        "/models/pull/", {"model": "tinyllama"}, headers={"accept": "application/json"}
    )
    assert not leaks(response.content.decode())
    frames = await frames_until(socket, pull_ended, timeout=10)
    frames += await frames_until(socket, lambda f: f["type"] == "local")
    await socket.disconnect()
    assert frames[-2]["pull"]["status"] == "done"
    assert frames[-2]["pull"]["host"] == two_hosts.url
    assert frames[-1] == {"type": "local", "host": two_hosts.url}
    assert not any(leaks(str(frame)) for frame in frames)
    pull = await database_sync_to_async(Pull.objects.get)()
    assert pull.host == two_hosts.url
    # Pulled with the credentials all the same.
    pull_request = [r for r in two_hosts.requests if r.path == "/api/pull"][-1]
    assert pull_request.authorization == "Basic b3BzOnMzY3JldA=="


@pytest.mark.django_db(transaction=True)
async def test_the_server_frames_name_hosts_without_credentials(two_hosts, staff_user, settings):
    socket = await open_models_socket(staff_user)
    frames = await frames_until(
        socket, lambda f: f["type"] == "server" and not f["reachable"], timeout=10
    )
    await socket.disconnect()
    servers = [frame for frame in frames if frame["type"] == "server"]
    assert {frame["host"] for frame in servers} <= {two_hosts.url, "http://127.0.0.1:9/"}
    assert not any(leaks(str(frame)) for frame in frames)


@pytest.mark.django_db
def test_the_django_admin_shows_pulls_without_credentials(client, two_hosts, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    # A row written by an older version, before hosts were stored without credentials,
    # is cleaned by migration 0003; a new one never has them.
    Pull.objects.create(model="x:latest", key="x:latest", host=two_hosts.url, status="done")
    client.force_login(staff_user)
    text = client.get("/admin/models_admin/pull/").content.decode()
    assert two_hosts.url in text and not leaks(text)


@pytest.mark.django_db(transaction=True)
def test_migration_0003_strips_credentials_from_hosts_recorded_before():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("models_admin", "0002_pull_host")],
        [("models_admin", "0003_pull_fraction_and_public_host")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    OldPull = executor.loader.project_state(before).apps.get_model("models_admin", "Pull")
    OldPull.objects.create(
        model="a:latest", key="a:latest", host=DEAD, status="running", completed=50, total=200
    )
    OldPull.objects.create(model="b:latest", key="b:latest", host="http://gpu:11434", status="done")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    rows = {pull.model: pull for pull in Pull.objects.all()}
    assert rows["a:latest"].host == "http://127.0.0.1:9/"
    assert rows["a:latest"].fraction == 0.25
    assert (rows["b:latest"].host, rows["b:latest"].fraction) == ("http://gpu:11434", 1.0)


def test_an_error_report_shows_no_credentials(rf, settings):
    from django.views.debug import ExceptionReporter

    settings.OLLAMA_URLS = [DEAD]
    settings.DATABASE_URL = f"postgres://chat:{SECRET}@db:5432/chat"
    url = DEAD  # a local variable of the failing frame

    try:
        raise RuntimeError(f"failed talking to {hosts.pool().hosts[0]!r}")
    except RuntimeError:
        import sys

        report = ExceptionReporter(rf.get("/"), *sys.exc_info())
        html, text = report.get_traceback_html(), report.get_traceback_text()
    assert url in DEAD
    for page in (html, text):
        assert "http://127.0.0.1:9/" in page and not leaks(page)
