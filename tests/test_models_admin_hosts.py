"""Several Ollama hosts (OLLAMA_URLS): the hosts table, choosing a host by index, every
action reaching the chosen host and no other, pulls recorded per host, and the poller
reading every host. Host A is the session's double, host B a second one."""

import asyncio
import re

import httpx
import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from models_admin import live, pulls, running, services
from models_admin.models import Pull
from ollama_layer.client import OllamaClient
from tests.fake_ollama import FakeOllama
from tests.models_admin_helpers import frames_until, open_models_socket, pull_ended, server_frame
from tests.test_models_admin_views import DEAD_URL, JSON, text_of

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def _second_server():
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def b(_second_server):
    """Host B: another version, two models (one of them only here), one loaded."""
    _second_server.reset()
    _second_server.version = "0.13.0"
    _second_server.remove_model("llava")
    _second_server.remove_model("qwen3")
    _second_server.add_model("mistral:7b", parameter_size="7B", size=4_100_000_000)
    httpx.post(
        f"{_second_server.url}/api/chat",
        json={"model": "mistral:7b", "messages": [], "keep_alive": "1h", "stream": False},
    ).raise_for_status()
    yield _second_server
    _second_server.reset()


@pytest.fixture
def a(fake, b, settings):
    """Host A (the first), with both hosts configured."""
    settings.OLLAMA_URLS = [fake.url, b.url]
    return fake


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def requests_to(double, path: str) -> list:
    return [r for r in double.requests if r.path == path]


def since(double, count: int) -> list:
    return double.requests[count:]


def host_row(page: str, url: str) -> str:
    match = re.search(rf'<tr data-host-url="{re.escape(url)}".*?</tr>', page, re.S)
    assert match, f"no row for {url}"
    return " ".join(re.sub(r"<[^>]+>", " ", match[0]).split())


def local_names(page: str) -> list[str]:
    table = page.split('id="local"', 1)[1]
    return re.findall(r'<tr data-model="([^"]+)"', table)


def running_names(page: str) -> list[str]:
    box = page.split('id="running"', 1)[1].split('id="local"', 1)[0]
    return re.findall(r'<tr data-model="([^"]+)"', box)


# --- the page -------------------------------------------------------------------------


def test_the_page_lists_every_host_with_its_state_and_counts(staff_client, a, b):
    response = staff_client.get("/models/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="hosts"' in page
    assert host_row(page, a.url) == f"{a.url} shown below Reachable 0.12.6 3 0"
    assert host_row(page, b.url) == f"{b.url} Reachable 0.13.0 2 1"
    # The links choose a host by index, never by URL.
    assert f'href="/models/?host=1" data-testid="host-link">{b.url}</a>' in page
    assert 'href="/models/" data-testid="host-link" aria-current="page">' in page
    # Without a choice, the lists are the first host's.
    assert local_names(page) == ["llama3.2:latest", "llava:latest", "qwen3:latest"]
    assert running_names(page) == []
    assert f"Ollama 0.12.6 is running at {a.url}" in text_of(response)
    assert f"Installed on {a.url}" in text_of(response)
    assert page.count('<input type="hidden" name="host" value="0">') == 4  # pull + 3 loads


def test_with_one_host_there_is_no_hosts_section(staff_client, fake):
    page = staff_client.get("/models/").content.decode()
    assert 'data-testid="hosts"' not in page and ">Hosts<" not in page
    assert 'name="host"' not in page and "host=" not in page


def test_choosing_a_host_shows_its_models_and_keeps_it_in_links_and_forms(staff_client, a, b):
    response = staff_client.get("/models/?host=1")
    assert response.status_code == 200
    page, text = response.content.decode(), text_of(response)
    assert f"Ollama 0.13.0 is running at {b.url}" in text
    assert local_names(page) == ["llama3.2:latest", "mistral:7b"]
    assert running_names(page) == ["mistral:7b"]
    assert "mistral:7b 7B · Q4_0 4.1 GB" in text
    assert host_row(page, b.url).startswith(f"{b.url} shown below")
    assert 'href="/models/show/?model=mistral%3A7b&amp;host=1"' in page
    assert 'href="/models/delete/?model=mistral%3A7b&amp;host=1"' in page
    assert 'href="?sort=size&amp;host=1"' in page
    # The pull, the two loads and the unload act on B.
    assert page.count('<input type="hidden" name="host" value="1">') == 4
    assert 'name="host" value="0"' not in page
    # The installed list the page's script fetches again.
    partial = staff_client.get("/models/?partial=local&host=1&sort=size").content.decode()
    assert re.findall(r'<tr data-model="([^"]+)"', partial) == ["llama3.2:latest", "mistral:7b"]
    hosts = staff_client.get("/models/?partial=hosts&host=1").content.decode()
    assert "<html" not in hosts and host_row(hosts, b.url).endswith("0.13.0 2 1")
    assert requests_to(a, "/api/tags") and requests_to(b, "/api/tags")


def test_the_detail_and_delete_pages_are_about_the_chosen_host(staff_client, a, b):
    before = len(a.requests)
    response = staff_client.get("/models/show/?model=mistral:7b&host=1")
    assert response.status_code == 200
    text, page = text_of(response), response.content.decode()
    assert f"← Models on {b.url}" in text
    assert 'href="/models/?host=1"' in page
    assert page.count('<input type="hidden" name="host" value="1">') == 3
    assert requests_to(b, "/api/show")[-1].body == {"model": "mistral:7b"}
    # A does not have it: asking A says so.
    assert staff_client.get("/models/show/?model=mistral:7b").status_code == 404
    assert [r.path for r in since(a, before)] == ["/api/show"]

    response = staff_client.get("/models/delete/?model=mistral:7b&host=1")
    assert f"from the Ollama server at {b.url} , with its files" in text_of(response)
    assert '<input type="hidden" name="host" value="1">' in response.content.decode()


# --- actions --------------------------------------------------------------------------


def test_load_and_unload_on_host_b_reach_b_and_not_a(staff_client, a, b):
    b_before = len(b.requests)
    response = staff_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "1"}, **JSON
    )
    assert response.status_code == 200
    assert response.json()["message"] == (
        f"Loaded “llama3.2” on {b.url}; it stays in memory for 5 minutes after its last use."
    )
    response = staff_client.post("/models/unload/", {"name": "mistral:7b", "host": "1"}, **JSON)
    assert response.json() == {"ok": True, "message": f"Unloaded “mistral:7b” on {b.url}."}
    assert [r.body for r in requests_to(b, "/api/chat")][-2:] == [
        {"model": "llama3.2", "messages": [], "keep_alive": "5m", "stream": False},
        {"model": "mistral:7b", "messages": [], "keep_alive": 0, "stream": False},
    ]
    assert len(requests_to(b, "/api/chat")) == 3  # the fixture's load, then ours
    assert b.running_models() == ["llama3.2:latest"]
    assert a.requests == [] and a.running_models() == []
    assert {r.path for r in since(b, b_before)} == {"/api/chat", "/api/ps", "/api/version"}

    # Host A is still the default.
    staff_client.post("/models/load/", {"name": "qwen3", "keep_alive": "5m"}, **JSON)
    assert a.running_models() == ["qwen3:latest"]
    assert b.running_models() == ["llama3.2:latest"]


def test_without_javascript_an_action_on_host_b_comes_back_to_host_b(staff_client, a, b):
    response = staff_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "1"}, follow=True
    )
    assert response.redirect_chain == [("/models/?host=1", 302)]
    assert f"Loaded “llama3.2” on {b.url}" in text_of(response)
    assert sorted(running_names(response.content.decode())) == ["llama3.2:latest", "mistral:7b"]


def test_delete_and_copy_on_host_b_leave_host_a_alone(staff_client, a, b):
    response = staff_client.post(
        "/models/copy/", {"name": "mistral:7b", "destination": "m2", "host": "1"}, **JSON
    )
    assert response.json()["message"] == f"Copied “mistral:7b” to “m2” on {b.url}."
    assert "m2:latest" in b.models and "m2:latest" not in a.models
    response = staff_client.post("/models/delete/", {"name": "llama3.2", "host": "1"}, follow=True)
    assert response.redirect_chain == [("/models/?host=1", 302)]
    assert f"Deleted “llama3.2” from the Ollama server at {b.url}." in text_of(response)
    assert "llama3.2:latest" not in b.models and "llama3.2:latest" in a.models
    assert [r.method for r in a.requests if r.method == "DELETE"] == []
    assert requests_to(a, "/api/copy") == []


# --- a host that is down --------------------------------------------------------------


def test_a_host_that_is_down_shows_as_unreachable_while_the_other_works(
    staff_client, fake, settings
):
    settings.OLLAMA_URLS = [fake.url, DEAD_URL]
    response = staff_client.get("/models/")
    assert response.status_code == 200
    page = response.content.decode()
    assert host_row(page, DEAD_URL) == (
        f"{DEAD_URL} Not reachable. Ollama is not reachable at {DEAD_URL}. "
        "Check that Ollama is running, then try again. — — —"
    )
    assert 'data-reachable="false"' in page
    assert host_row(page, fake.url).endswith("Reachable 0.12.6 3 0")
    assert local_names(page) == ["llama3.2:latest", "llava:latest", "qwen3:latest"]

    response = staff_client.get("/models/?host=1")
    assert response.status_code == 200
    text = text_of(response)
    assert f"Ollama is not reachable at {DEAD_URL}. Check that Ollama is running" in text
    assert "Unknown while Ollama is unreachable." in text
    response = staff_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "1"}, **JSON
    )
    assert response.status_code == 503
    assert response.json()["message"].startswith(
        f"Could not load “llama3.2” on {DEAD_URL}. Ollama is not reachable at {DEAD_URL}."
    )
    response = staff_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "0"}, **JSON
    )
    assert response.status_code == 200 and fake.running_models() == ["llama3.2:latest"]


# --- choosing a host that does not exist ----------------------------------------------


BAD_INDEXES = ["2", "-1", "x", "1.0", " 1", "99999", "http://127.0.0.1:1"]


@pytest.mark.parametrize("index", BAD_INDEXES)
def test_an_index_that_names_no_host_is_a_404_for_pages(staff_client, a, b, index):
    a_before, b_before = len(a.requests), len(b.requests)
    for url in ("/models/", "/models/show/", "/models/delete/"):
        response = staff_client.get(url, {"host": index, "model": "llama3.2"})
        assert response.status_code == 404, url
    assert staff_client.get("/models/", {"host": index, "partial": "local"}).status_code == 404
    assert since(a, a_before) == [] and since(b, b_before) == []


@pytest.mark.parametrize(
    "url, data",
    [
        ("/models/pull/", {"model": "tinyllama"}),
        ("/models/load/", {"name": "llama3.2", "keep_alive": "5m"}),
        ("/models/unload/", {"name": "llama3.2"}),
        ("/models/delete/", {"name": "llama3.2"}),
        ("/models/copy/", {"name": "llama3.2", "destination": "mine"}),
    ],
)
def test_an_index_that_names_no_host_is_a_404_for_actions(staff_client, a, b, url, data):
    a_before, b_before = len(a.requests), len(b.requests)
    for index in ("2", "-1", b.url):
        assert staff_client.post(url, {**data, "host": index}, **JSON).status_code == 404
    assert since(a, a_before) == [] and since(b, b_before) == []
    assert Pull.objects.count() == 0


def test_with_one_host_only_index_zero_exists(staff_client, fake):
    assert staff_client.get("/models/?host=0").status_code == 200
    assert staff_client.get("/models/?host=1").status_code == 404


@pytest.mark.parametrize("url", ["/models/?host=1", "/models/show/?model=llama3.2&host=1"])
def test_anonymous_and_non_staff_are_refused_whatever_the_host(client, a, b, user, url):
    a_before, b_before = len(a.requests), len(b.requests)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("chat:login"))
    response = client.post("/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "1"})
    assert response.status_code == 302
    client.force_login(user)
    assert client.get(url).status_code == 403
    response = client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m", "host": "1"}, **JSON
    )
    assert response.status_code == 403
    assert client.get("/models/?host=9").status_code == 403  # not even told it is no host
    assert since(a, a_before) == [] and since(b, b_before) == []


# --- pulls ----------------------------------------------------------------------------


def test_the_pull_list_names_the_host_of_each_pull(staff_client, a, b, staff_user):
    pull, _ = services.start_pull(staff_user, "tinyllama", "", b.url)
    services.finish_pull(pull.id, Pull.Status.DONE, "success", 40, 40)
    old = Pull.objects.create(model="old:latest", key="old:latest", status="done")
    assert old.host == ""  # rows from before hosts were recorded
    text = text_of(staff_client.get("/models/"))
    assert f"tinyllama:latest Done on {b.url}, by admin" in text
    assert "old:latest Done" in text


def test_one_running_pull_per_model_and_host(staff_user, a, b, monkeypatch):
    # Their tasks are alive (this process has no real ones: nothing is pulled here).
    monkeypatch.setattr(live, "live_channels", lambda: ["c1", "c2", "c3"])
    first, created = services.start_pull(staff_user, "tinyllama", "c1", a.url)
    assert created
    second, created = services.start_pull(staff_user, "TinyLlama:latest", "c2", b.url)
    assert created and second.id != first.id
    joined, created = services.start_pull(staff_user, "tinyllama", "c3", b.url)
    assert not created and joined.id == second.id


@pytest.mark.django_db(transaction=True)
def test_older_pull_rows_stay_valid_after_the_migration():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("models_admin", "0001_initial")])
    old_apps = executor.loader.project_state([("models_admin", "0001_initial")]).apps
    OldPull = old_apps.get_model("models_admin", "Pull")
    OldPull.objects.create(model="x:latest", key="x:latest", status="running")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    row = Pull.objects.get(key="x:latest")
    assert (row.host, row.status) == ("", "running")


# --- pulls and the socket (the server's event loop must outlive the request) ----------


@pytest.fixture
def fast(settings):
    settings.PULL_FRAME_MS = 50
    settings.PULL_CHECKPOINT_SECONDS = 0.1
    settings.MODELS_POLL_SECONDS = 30


@pytest.fixture
async def no_pull_outlives_its_test():
    yield
    tasks = [job.task for job in list(pulls._jobs.values()) if job.task]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _staff(async_client, staff_user):
    await async_client.aforce_login(staff_user)
    return async_client


@pytest.mark.django_db(transaction=True)
async def test_a_pull_on_host_b_goes_to_b_and_is_recorded_with_it(
    a, b, fast, async_client, staff_user, no_pull_outlives_its_test
):
    client = await _staff(async_client, staff_user)
    socket = await open_models_socket(staff_user)
    response = await client.post(
        "/models/pull/", {"model": "tinyllama", "host": "1"}, headers={"accept": "application/json"}
    )
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == f"Pulling “tinyllama:latest” on {b.url}…"
    assert body["pull"]["host"] == b.url
    final = (await frames_until(socket, pull_ended, timeout=10))[-1]["pull"]
    assert (final["id"], final["status"], final["host"]) == (body["pull"]["id"], "done", b.url)
    local = (await frames_until(socket, lambda f: f["type"] == "local"))[-1]
    assert local == {"type": "local", "host": b.url}
    assert [r.body for r in requests_to(b, "/api/pull")] == [
        {"model": "tinyllama:latest", "insecure": False, "stream": True}
    ]
    assert requests_to(a, "/api/pull") == []
    assert "tinyllama:latest" in b.models and "tinyllama:latest" not in a.models
    saved = await database_sync_to_async(Pull.objects.get)(uuid=body["pull"]["id"])
    assert (saved.host, saved.status) == (b.url, "done")
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_same_model_pulls_to_two_hosts_at_once_and_joins_per_host(
    a, b, fast, async_client, staff_user, no_pull_outlives_its_test
):
    a.pull_delay = b.pull_delay = 0.03
    client = await _staff(async_client, staff_user)
    headers = {"accept": "application/json"}

    async def pull(host: str):
        response = await client.post(
            "/models/pull/", {"model": "tinyllama", "host": host}, headers=headers
        )
        return response.status_code, response.json()["pull"]

    (status_a, on_a), (status_b, on_b) = await pull("0"), await pull("1")
    assert (status_a, status_b) == (202, 202) and on_a["id"] != on_b["id"]
    assert (on_a["host"], on_b["host"]) == (a.url, b.url)
    status, joined = await pull("1")
    assert status == 200 and joined["id"] == on_b["id"]
    await asyncio.sleep(0.1)
    assert len(requests_to(a, "/api/pull")) == len(requests_to(b, "/api/pull")) == 1


@pytest.mark.django_db(transaction=True)
async def test_the_poller_reads_every_host_and_frames_name_their_host(
    a, b, settings, async_client, staff_user
):
    settings.MODELS_POLL_SECONDS = 0.05
    socket = await open_models_socket(staff_user)
    states = {}
    while len(states) < 2:
        frame = (await frames_until(socket, server_frame))[-1]
        states[frame["host"]] = frame
    assert states[a.url]["url"] == a.url and states[a.url]["running"] == []
    assert [m["name"] for m in states[b.url]["running"]] == ["mistral:7b"]
    assert states[b.url]["version"] == "0.13.0"
    assert f"running at <code>{b.url}</code>" in states[b.url]["status_html"]
    assert 'name="host" value="1"' in states[b.url]["running_html"]
    assert "Reachable" in states[b.url]["host_state_html"]
    # One poller for both: each host is read again and again...
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while min(len(requests_to(a, "/api/ps")), len(requests_to(b, "/api/ps"))) < 4:
        assert loop.time() < deadline, "both hosts should be polled"
        await asyncio.sleep(0.05)
    # ...and nothing unchanged is pushed.
    assert await socket.receive_nothing(timeout=0.05)

    # Something loads a model on B: the frame says B, and A's state is not pushed again.
    await OllamaClient(b.url).load("llama3.2", "5m")
    frames = await frames_until(socket, server_frame, timeout=2)
    assert frames[-1]["host"] == b.url
    assert sorted(m["name"] for m in frames[-1]["running"]) == ["llama3.2:latest", "mistral:7b"]
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()
    assert not running.poller().active


@pytest.mark.django_db(transaction=True)
async def test_a_host_that_is_down_is_pushed_as_such_beside_the_other(
    fake, settings, staff_user, async_client
):
    settings.OLLAMA_URLS = [fake.url, DEAD_URL]
    settings.MODELS_POLL_SECONDS = 30
    socket = await open_models_socket(staff_user)
    states = {}
    while len(states) < 2:
        frame = (await frames_until(socket, server_frame))[-1]
        states[frame["host"]] = frame
    assert states[fake.url]["reachable"] is True
    assert states[DEAD_URL]["reachable"] is False
    assert states[DEAD_URL]["error"].startswith(f"Ollama is not reachable at {DEAD_URL}.")
    assert "Not reachable." in states[DEAD_URL]["host_state_html"]

    # A load on A is pushed at once, for A only.
    client = await _staff(async_client, staff_user)
    response = await client.post(
        "/models/load/",
        {"name": "llama3.2", "keep_alive": "5m", "host": "0"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200
    frame = (await frames_until(socket, server_frame, timeout=2))[-1]
    assert frame["host"] == fake.url
    assert [m["name"] for m in frame["running"]] == ["llama3.2:latest"]
    await socket.disconnect()
