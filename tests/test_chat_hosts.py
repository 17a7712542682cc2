"""Chat with several Ollama hosts (OLLAMA_URLS=A,B) when one fails: a model whose host is
down is unreachable, not missing, in the answer's error and in the picker's list; and
every failure is worded for what happened (refused, failed before or while answering)."""

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from ollama_layer import hosts
from tests.conftest import connect, receive, receive_until, text_of
from tests.fake_ollama import FakeOllama, Reply

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_URL = "http://127.0.0.1:9"  # nothing listens there
NOT_INSTALLED = "not installed"


@pytest.fixture(scope="module")
def _doubles():
    first, second = FakeOllama().start(), FakeOllama().start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(autouse=True)
def _fresh_pools():
    # The pool remembers hosts (down marks, model lists) across requests, as it should in
    # a process; each test starts with none.
    hosts._pools.clear()
    yield
    hosts._pools.clear()


@pytest.fixture
def a_b(_doubles, settings):
    """A has "solo" (only there) and llama3.2; B has llama3.2 and qwen3."""
    a, b = _doubles
    for double in (a, b):
        if double._server is None:  # a test stopped it
            double.start()
        double.reset()
    a.add_model("solo:7b", parameter_size="7B")
    a.remove_model("qwen3")
    b.remove_model("llava")
    settings.OLLAMA_URLS = [a.url, b.url]
    yield a, b
    for double in (a, b):
        if double._server is None:
            double.start()


async def ask(user, model: str, content: str = "Hello?") -> list[dict]:
    """A new conversation with `model`, one question; every frame up to `done`."""
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model=model
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": content, "model": model, "client_id": "c"})
    frames = await receive_until(ws, "done")
    await ws.disconnect()
    return frames


async def saved_error(frames: list[dict]) -> str:
    message = await database_sync_to_async(Message.objects.get)(uuid=frames[-1]["id"])
    assert message.status == frames[-1]["status"]
    return message.error


# --- a model whose host is down -------------------------------------------------------


async def test_a_model_only_on_a_host_that_is_down_is_unreachable_not_missing(a_b, user):
    a, b = a_b
    assert (await ask(user, "solo:7b"))[-1]["status"] == "complete"  # the pool knows A's list
    a.stop()
    frames = await ask(user, "solo:7b")
    done = frames[-1]
    assert done["status"] == "failed"
    assert done["error"] == (
        "The Ollama server that has “solo:7b” is not reachable right now. "
        "Try again shortly, or pick another model."
    )
    assert NOT_INSTALLED not in done["error"] and a.url not in done["error"]
    assert await saved_error(frames) == done["error"]
    # B was not asked for a model it does not have.
    assert not [r for r in b.chat_requests() if r["model"] == "solo:7b"]

    # Still unreachable while A is marked down; a model on B still answers.
    assert "not reachable right now" in (await ask(user, "solo:7b"))[-1]["error"]
    assert (await ask(user, "qwen3"))[-1]["status"] == "complete"


async def test_a_host_marked_down_by_a_dropped_stream_still_answers_for_its_models(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=["Half", " an", " answer"], drop_after=1), model="solo:7b")
    frames = await ask(user, "solo:7b")
    assert frames[-1]["status"] == "failed"
    assert frames[-1]["error"] == (
        "Ollama failed while answering: the connection to Ollama was lost. "
        "Continue or regenerate the answer."
    )
    assert not hosts.pool().hosts[0].up  # A is marked down for DOWN_SECONDS
    # ...but it is the only host with "solo": it is tried rather than called missing.
    frames = await ask(user, "solo:7b")
    assert frames[-1]["status"] == "complete"
    assert text_of(frames) == "Hello! How can I help you today?"


async def test_not_found_while_a_host_whose_models_are_unknown_is_down(a_b, user, settings):
    a, b = a_b
    settings.OLLAMA_URLS = [DEAD_URL, b.url]  # never listed: any model may be there
    frames = await ask(user, "solo:7b")
    assert frames[-1]["status"] == "failed"
    assert frames[-1]["error"] == (
        "“solo:7b” is not on the Ollama servers that can be reached right now, and one "
        "that may have it is not reachable. Try again shortly, or pick another model."
    )
    assert [r["model"] for r in b.chat_requests()] == ["solo:7b"]  # B said "not found"


async def test_with_every_host_up_a_missing_model_is_still_not_installed(a_b, user):
    frames = await ask(user, "nosuchmodel")
    assert frames[-1]["status"] == "failed"
    assert NOT_INSTALLED in frames[-1]["error"]
    assert "model 'nosuchmodel' not found" in frames[-1]["error"]


async def test_staff_see_which_host_is_unreachable(a_b, staff_user):
    a, b = a_b
    assert (await ask(staff_user, "solo:7b"))[-1]["status"] == "complete"
    a.stop()
    error = (await ask(staff_user, "solo:7b"))[-1]["error"]
    assert error.startswith(f"The Ollama server that has “solo:7b” ({a.url}) is not reachable")


# --- the picker's list ----------------------------------------------------------------


async def models_of(client) -> dict:
    response = await client.get("/api/models/")
    assert response.status_code == 200
    return response.json()


async def test_the_list_keeps_a_down_hosts_models_as_unavailable(a_b, async_client, user):
    a, b = a_b
    await async_client.aforce_login(user)
    listed = {m["name"]: m for m in (await models_of(async_client))["models"]}
    assert listed["solo:7b"]["available"] is True
    a.stop()
    body = await models_of(async_client)
    listed = {m["name"]: m for m in body["models"]}
    # Its last-known models stay, marked unavailable; what B has is still available.
    assert listed["solo:7b"] == {
        "name": "solo:7b",
        "parameter_size": "7B",
        "family": "llama",
        "available": False,
    }
    assert listed["qwen3:latest"]["available"] is True
    assert listed["llama3.2:latest"]["available"] is True  # on B too
    assert body["incomplete"] is False


async def test_the_list_says_when_a_down_host_was_never_listed(a_b, async_client, user, settings):
    a, b = a_b
    settings.OLLAMA_URLS = [DEAD_URL, b.url]
    await async_client.aforce_login(user)
    body = await models_of(async_client)
    assert body["incomplete"] is True
    assert {m["name"] for m in body["models"]} == {"llama3.2:latest", "qwen3:latest"}
    settings.OLLAMA_URLS = [a.url, b.url]
    assert (await models_of(async_client))["incomplete"] is False


# --- every failure worded for what happened -------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        # An error line after tokens: Ollama had begun, so it failed while answering.
        (
            Reply(content=["Half", " an", " answer"], error_after=2, error="runner crashed"),
            "Ollama failed while answering: runner crashed. Continue or regenerate the answer.",
        ),
        # The connection dropped after tokens.
        (
            Reply(content=["Half", " an", " answer"], drop_after=2),
            "Ollama failed while answering: the connection to Ollama was lost. "
            "Continue or regenerate the answer.",
        ),
        # A 4xx before the first token: a refusal.
        (
            Reply(status=400, error="invalid options"),
            "Ollama refused the request: invalid options",
        ),
        # A 5xx before the first token (a load that failed): not a refusal.
        (
            Reply(status=500, error="model runner has unexpectedly stopped"),
            "Ollama failed before answering: model runner has unexpectedly stopped",
        ),
    ],
    ids=["error-line", "dropped", "4xx", "5xx"],
)
async def test_each_failure_is_worded_for_what_happened(fake, user, reply, error):
    fake.push_reply(reply)
    frames = await ask(user, "llama3.2")
    assert frames[-1]["status"] == "failed"
    assert frames[-1]["error"] == error
    assert await saved_error(frames) == error
