"""The models pages and actions against the Ollama test double, with the three personas.

Pulls need the server's event loop to outlive the request, so they are tested with the
async client in test_models_admin_pulls.py.
"""

import html
import json
import re

import pytest
from django.urls import reverse

from chat.models import Conversation
from models_admin import services
from models_admin.models import Pull
from ollama_layer.client import OllamaClient

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
DEAD_URL = "http://127.0.0.1:9"  # nothing listens there

PAGES = [
    "/models/",
    "/models/?partial=local",
    "/models/show/?model=llama3.2",
    "/models/delete/?model=llama3.2",
]
ACTIONS = [
    ("/models/pull/", {"model": "tinyllama"}),
    ("/models/load/", {"name": "llama3.2", "keep_alive": "5m"}),
    ("/models/unload/", {"name": "llama3.2"}),
    ("/models/delete/", {"name": "llama3.2"}),
    ("/models/copy/", {"name": "llama3.2", "destination": "mine"}),
    ("/models/pulls/00000000-0000-0000-0000-000000000000/cancel/", {}),
]


def requests_to(fake, path: str) -> list:
    return [r for r in fake.requests if r.path == path]


def text_of(response) -> str:
    """The page's text with tags removed and spaces collapsed: what a person reads."""
    page = response.content.decode()
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# --- who may see what -----------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login_for_every_page(client, fake, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("chat:login"))
    assert fake.requests == []


@pytest.mark.parametrize("url, data", ACTIONS)
def test_anonymous_is_sent_to_login_for_every_action(client, fake, url, data):
    response = client.post(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("chat:login"))
    assert fake.requests == []


@pytest.mark.parametrize("url", PAGES)
def test_a_non_staff_user_gets_403_on_every_page(client, fake, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 403
    assert "Staff only" in text_of(response)
    assert fake.requests == []


@pytest.mark.parametrize("url, data", ACTIONS)
def test_a_non_staff_user_gets_403_on_every_action(client, fake, user, url, data):
    client.force_login(user)
    response = client.post(url, data, **JSON)
    assert response.status_code == 403
    assert fake.requests == []
    assert Pull.objects.count() == 0


def test_the_models_link_is_shown_to_staff_only(client, fake, user, staff_user):
    client.force_login(user)
    assert 'href="/models/"' not in client.get("/").content.decode()
    client.force_login(staff_user)
    assert 'href="/models/"' in client.get("/").content.decode()


# --- the models page ------------------------------------------------------------------


def test_the_page_lists_local_models_with_their_details(staff_client, fake):
    response = staff_client.get("/models/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("default-src 'self'")
    text = text_of(response)
    assert "Ollama 0.12.6 is running at " + fake.url in text
    for expected in ("llama3.2:latest", "2.0 GB", "3.2B", "Q4_K_M", "qwen3:latest", "8.2B"):
        assert expected in text
    assert "llava:latest 4.7 GB llama 7B Q4_0" in text
    page = response.content.decode()
    assert page.count('data-testid="load"') == 3
    assert page.count('data-testid="delete"') == 3
    # The end-to-end hooks: one pull box, one pull button.
    assert page.count('name="model"') == 1 and page.count('data-testid="pull"') == 1
    assert "No model is loaded right now." in text


def test_the_local_models_sort_by_any_column(staff_client, fake):
    def order(query: str) -> list[str]:
        page = staff_client.get(f"/models/{query}").content.decode()
        return re.findall(r'<tr data-model="([^"]+)"', page)

    assert order("") == ["llama3.2:latest", "llava:latest", "qwen3:latest"]
    assert order("?sort=size&order=desc") == ["qwen3:latest", "llava:latest", "llama3.2:latest"]
    assert order("?sort=parameters") == ["llama3.2:latest", "llava:latest", "qwen3:latest"]
    assert order("?sort=modified&order=desc") == ["qwen3:latest", "llama3.2:latest", "llava:latest"]
    assert order("?sort=nonsense") == order("")


async def _load(fake, name: str, keep_alive):
    await OllamaClient(fake.url).load(name, keep_alive)


def test_running_models_show_vram_cpu_context_and_time_left(staff_client, fake):
    from asgiref.sync import async_to_sync

    fake.add_model("big:70b", size=40_000_000_000, size_vram=30_000_000_000, parameter_size="70B")
    async_to_sync(_load)(fake, "big:70b", "10m")
    async_to_sync(_load)(fake, "llama3.2", -1)
    response = staff_client.get("/models/")
    text = text_of(response)
    # VRAM used, and what did not fit in it (on the CPU).
    assert "big:70b 70B · Q4_0 40.0 GB 30.0 GB 10.0 GB (25%) 4,096" in text
    assert re.search(r"big:70b .* (9 min 59 s|10 min 0 s) Unload", text)
    assert re.search(
        r"llama3\.2:latest 3\.2B · Q4_K_M 2\.0 GB 2\.0 GB — 4,096 forever Unload", text
    )
    page = response.content.decode()
    assert page.count('data-testid="unload"') == 2
    assert re.search(r'data-expires-in="(599|600)"', page)
    assert 'data-expires-in="forever"' in page
    # ...and the local list marks them as loaded.
    assert '<tr data-model="llama3.2:latest" data-running>' in page


def test_the_partial_local_list_is_only_the_table(staff_client, fake):
    page = staff_client.get("/models/?partial=local&sort=size").content.decode()
    assert "<html" not in page
    assert re.findall(r'<tr data-model="([^"]+)"', page)[0] == "llama3.2:latest"


def test_the_page_shows_the_history_of_pulls(staff_client, fake, staff_user):
    done, _ = services.start_pull(staff_user, "tinyllama", "")
    services.finish_pull(done.id, Pull.Status.DONE, "success", 40, 40)
    failed, _ = services.start_pull(staff_user, "ghost", "")
    services.finish_pull(failed.id, "failed", "pulling manifest", 0, 0, "Could not pull “ghost”.")
    text = text_of(staff_client.get("/models/"))
    assert "ghost:latest Failed by admin" in text
    assert "Could not pull “ghost”." in text
    assert "tinyllama:latest Done by admin" in text


def test_a_pull_left_running_by_a_dead_process_shows_as_interrupted(staff_client, fake, staff_user):
    services.start_pull(staff_user, "tinyllama", "specific.pull!gone")
    text = text_of(staff_client.get("/models/"))
    assert "tinyllama:latest Interrupted" in text
    assert "The server stopped while this pull was running" in text
    assert Pull.objects.get().status == Pull.Status.INTERRUPTED


# --- the detail page ------------------------------------------------------------------


def test_the_detail_page_shows_what_show_returns_and_who_uses_it(staff_client, fake, user):
    Conversation.objects.create(owner=user, model="llava")
    Conversation.objects.create(owner=user, model="llava:latest")
    Conversation.objects.create(owner=user, model="llama3.2")
    response = staff_client.get("/models/show/?model=llava")
    assert response.status_code == 200
    text = text_of(response)
    assert "completion vision" in text
    assert "Context length 32,768 tokens" in text
    assert "Parameters 7B (7,000,000,000)" in text
    assert "Quantisation Q4_0 · gguf" in text
    assert "Used by 2 conversations" in text
    assert 'stop "[INST]"' in text
    assert "[INST] {{ if .System }}" in text
    assert "Apache License" in text
    assert fake.requests[-1].body == {"model": "llava"}


def test_the_detail_page_shows_thinking_and_tools(staff_client, fake):
    text = text_of(staff_client.get("/models/show/?model=qwen3:latest"))
    assert "completion thinking tools" in text
    assert "temperature 0.6" in text
    assert "Used by 0 conversations" in text


def test_an_unknown_model_is_explained_in_ollamas_words(staff_client, fake):
    response = staff_client.get("/models/show/?model=ghost")
    assert response.status_code == 404
    assert "Could not read “ghost”. Ollama said: model 'ghost:latest' not found" in text_of(
        response
    )


def test_an_invalid_name_is_refused_before_asking_ollama(staff_client, fake):
    for url in ("/models/show/?model=bad%20name!", "/models/delete/?model=-x"):
        response = staff_client.get(url)
        assert response.status_code == 400
        assert "is not a valid model name" in text_of(response)
    response = staff_client.get("/models/show/?model=a%00b%1b")
    assert response.status_code == 400
    assert "\x00" not in response.content.decode() and "\x1b" not in response.content.decode()
    assert "“a\\x00b\\x1b” is not a valid model name" in text_of(response)
    response = staff_client.post("/models/pull/", {"model": "no spaces allowed"}, **JSON)
    assert response.status_code == 400
    assert "is not a valid model name" in response.json()["message"]
    response = staff_client.post("/models/copy/", {"name": "llama3.2", "destination": "a:"}, **JSON)
    assert response.status_code == 400
    assert fake.requests == []
    assert Pull.objects.count() == 0


# --- load and unload ------------------------------------------------------------------


def test_load_sends_an_empty_chat_with_the_chosen_keep_alive(staff_client, fake):
    response = staff_client.post("/models/load/", {"name": "llama3.2", "keep_alive": "1h"}, **JSON)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "message": "Loaded “llama3.2”; it stays in memory for 1 hour after its last use.",
    }
    chat = requests_to(fake, "/api/chat")
    assert [r.body for r in chat] == [
        {"model": "llama3.2", "messages": [], "keep_alive": "1h", "stream": False}
    ]
    assert fake.running_models() == ["llama3.2:latest"]


def test_load_forever_sends_a_negative_keep_alive(staff_client, fake):
    staff_client.post("/models/load/", {"name": "qwen3", "keep_alive": "-1"}, **JSON)
    assert requests_to(fake, "/api/chat")[0].body["keep_alive"] == -1
    assert "forever" in text_of(staff_client.get("/models/"))


def test_load_refuses_a_keep_alive_it_does_not_offer(staff_client, fake):
    response = staff_client.post("/models/load/", {"name": "qwen3", "keep_alive": "3y"}, **JSON)
    assert response.status_code == 400
    assert fake.requests == []


def test_unload_sends_keep_alive_zero_and_the_model_leaves_the_list(staff_client, fake):
    staff_client.post("/models/load/", {"name": "llama3.2", "keep_alive": "5m"}, **JSON)
    response = staff_client.post("/models/unload/", {"name": "llama3.2:latest"}, **JSON)
    assert response.json() == {"ok": True, "message": "Unloaded “llama3.2:latest”."}
    assert requests_to(fake, "/api/chat")[-1].body == {
        "model": "llama3.2:latest",
        "messages": [],
        "keep_alive": 0,
        "stream": False,
    }
    assert fake.running_models() == []
    assert "No model is loaded right now." in text_of(staff_client.get("/models/"))


def test_without_javascript_an_action_redirects_back_with_its_message(staff_client, fake):
    response = staff_client.post(
        "/models/load/", {"name": "llama3.2", "keep_alive": "5m"}, follow=True
    )
    assert response.redirect_chain == [("/models/", 302)]
    assert "Loaded “llama3.2”" in text_of(response)
    response = staff_client.post(
        "/models/unload/",
        {"name": "llama3.2", "next": "/models/show/?model=llama3.2"},
        follow=True,
    )
    assert response.redirect_chain == [("/models/show/?model=llama3.2", 302)]
    assert "Unloaded “llama3.2”." in text_of(response)
    # Never redirected off the site.
    response = staff_client.post("/models/unload/", {"name": "llama3.2", "next": "https://x.io/"})
    assert response["Location"] == "/models/"


def test_ollamas_refusals_are_shown_in_its_words(staff_client, fake):
    response = staff_client.post("/models/load/", {"name": "ghost", "keep_alive": "5m"}, **JSON)
    assert response.status_code == 404
    assert response.json()["message"] == (
        "Could not load “ghost”. Ollama said: model 'ghost' not found"
    )
    fake.busy = True
    response = staff_client.post("/models/load/", {"name": "qwen3", "keep_alive": "5m"}, **JSON)
    assert response.status_code == 502
    assert "Ollama is busy right now" in response.json()["message"]
    assert "maximum pending requests exceeded" in response.json()["message"]


# --- delete and copy ------------------------------------------------------------------


def test_delete_asks_first_naming_the_conversations_that_use_it(staff_client, fake, user):
    Conversation.objects.create(owner=user, model="llama3.2")
    Conversation.objects.create(owner=user, model="LLAMA3.2:latest")
    response = staff_client.get("/models/delete/?model=llama3.2:latest")
    text = text_of(response)
    assert "Delete llama3.2:latest?" in text
    assert "2 conversations use this model." in text
    assert fake.requests == []  # asking is not deleting


def test_delete_removes_the_model_from_ollama(staff_client, fake):
    response = staff_client.post("/models/delete/", {"name": "llava:latest"}, follow=True)
    assert response.redirect_chain == [("/models/", 302)]
    assert "Deleted “llava:latest” from the Ollama server." in text_of(response)
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert [(r.path, r.body) for r in deletes] == [("/api/delete", {"model": "llava:latest"})]
    assert "llava:latest" not in fake.models
    assert 'data-model="llava:latest"' not in response.content.decode()


def test_deleting_a_missing_model_says_so(staff_client, fake):
    response = staff_client.post("/models/delete/", {"name": "ghost"}, **JSON)
    assert response.status_code == 404
    assert response.json()["message"] == (
        "Could not delete “ghost”. Ollama said: model 'ghost' not found"
    )


def test_copy_makes_a_new_name_for_the_model(staff_client, fake):
    response = staff_client.post(
        "/models/copy/", {"name": "llama3.2", "destination": "my-llama:v1"}, **JSON
    )
    assert response.json() == {"ok": True, "message": "Copied “llama3.2” to “my-llama:v1”."}
    assert requests_to(fake, "/api/copy")[0].body == {
        "source": "llama3.2",
        "destination": "my-llama:v1",
    }
    assert "my-llama:v1 2.0 GB llama 3.2B" in text_of(staff_client.get("/models/"))


def test_copying_a_missing_model_says_so(staff_client, fake):
    response = staff_client.post("/models/copy/", {"name": "ghost", "destination": "g2"}, **JSON)
    assert response.status_code == 404
    assert response.json()["message"] == (
        'Could not copy “ghost” to “g2”. Ollama said: model "ghost" not found'
    )


# --- Ollama down ----------------------------------------------------------------------


def test_ollama_down_is_explained_on_every_page(staff_client, settings, staff_user):
    settings.OLLAMA_URL = DEAD_URL
    Pull.objects.create(model="old:latest", key="old:latest", status="done")
    response = staff_client.get("/models/")
    assert response.status_code == 200
    text = text_of(response)
    assert f"Ollama is not reachable at {DEAD_URL}. Check that Ollama is running" in text
    assert "Unknown while Ollama is unreachable." in text
    assert "old:latest Done" in text  # the history is ours, not Ollama's
    response = staff_client.get("/models/show/?model=llama3.2")
    assert response.status_code == 503
    assert f"Could not read “llama3.2”. Ollama is not reachable at {DEAD_URL}." in text_of(response)
    response = staff_client.get("/models/delete/?model=llama3.2")
    assert response.status_code == 200 and "Delete llama3.2?" in text_of(response)
    response = staff_client.get("/models/?partial=local")
    assert response.status_code == 200


@pytest.mark.parametrize("url, data", ACTIONS[1:5])
def test_ollama_down_is_explained_for_every_action(staff_client, settings, url, data):
    settings.OLLAMA_URL = DEAD_URL
    response = staff_client.post(url, data, **JSON)
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert f"Ollama is not reachable at {DEAD_URL}. Check that Ollama is running" in body["message"]


def test_an_ollama_that_answers_ps_with_an_error_is_shown_as_such(staff_client, fake, settings):
    settings.OLLAMA_URL = fake.url + "/nowhere"  # every route is "404 page not found"
    text = text_of(staff_client.get("/models/"))
    assert "answered with an error. Ollama said: 404 page not found" in text


def test_the_json_of_a_frame_is_compact_and_keeps_unicode():
    from models_admin.frames import encode

    assert encode({"message": "“x”"}) == json.dumps(
        {"message": "“x”"}, separators=(",", ":"), ensure_ascii=False
    )
