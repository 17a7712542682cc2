"""A host that dies mid-answer, with several hosts (OLLAMA_URLS=A,B): the answer goes on
on another host that has the model, from where it stopped, as Continue does; the text
shown never goes back or doubles, and the answer says so under it. With one host, or
no other host that has the model, it fails with its text as before."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import Conversation, Message
from ollama_layer import hosts
from tests.conftest import add_turns, connect, receive, receive_until, text_of
from tests.fake_ollama import FakeOllama, Reply
from tests.test_chat_reasoning import view_of

pytestmark = pytest.mark.django_db(transaction=True)

TOKENS = [f" t{i}" for i in range(12)]
REST = [" and", " the", " rest."]
LOST = "The connection to Ollama was lost"


@pytest.fixture(scope="module")
def _doubles():
    doubles = [FakeOllama().start() for _ in range(3)]
    yield doubles
    for double in doubles:
        double.stop()


@pytest.fixture(autouse=True)
def _fresh_pools():
    hosts._pools.clear()  # no down marks or model lists from another test
    yield
    hosts._pools.clear()


@pytest.fixture
def a_b(_doubles, settings):
    """Two hosts that both have llama3.2 (and qwen3); A alone has "solo"."""
    a, b, _ = _doubles
    for double in (a, b):
        if double._server is None:
            double.start()
        double.reset()
    a.add_model("solo:7b")
    settings.OLLAMA_URLS = [a.url, b.url]
    return a, b


async def ask(user, model="llama3.2", conversation=None, ws=None):
    """One question in a (new) conversation; (every frame up to `done`, conversation)."""
    if conversation is None:
        conversation = await database_sync_to_async(Conversation.objects.create)(
            owner=user, model=model
        )
    own = ws is None
    if own:
        ws = await connect(conversation.uuid, user)
        await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Count", "model": model, "client_id": "c"})
    frames = await receive_until(ws, "done")
    if own:
        await ws.disconnect()
    return frames, conversation


@database_sync_to_async
def saved(message_id) -> Message:
    return Message.objects.get(uuid=message_id)


@database_sync_to_async
def page_html(user, conversation) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/c/{conversation.uuid}/")
    assert response.status_code == 200
    return response.content.decode()


def answered(double) -> list[dict]:
    return [r for r in double.chat_requests() if r["model"] in ("llama3.2", "solo:7b", "qwen3")]


# --- the answer goes on -----------------------------------------------------------------


async def test_a_dropped_stream_goes_on_on_another_host_from_where_it_stopped(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=TOKENS, drop_after=5, delay=0.01))
    b.push_reply(Reply(content=REST))
    frames, conversation = await ask(user)
    first_part = "".join(TOKENS[:5])
    done = frames[-1]

    assert done["status"] == "complete" and done["error"] == ""
    # The tab saw the first part, then the continuation: no gap, nothing twice.
    assert text_of(frames) == first_part + "".join(REST)
    answer = await saved(done["id"])
    assert (answer.status, answer.content) == ("complete", first_part + " and the rest.")
    # B was asked to go on from the partial answer, exactly as Continue asks.
    [asked_a], [asked_b] = answered(a), answered(b)
    assert asked_b["messages"] == [
        *asked_a["messages"],
        {"role": "assistant", "content": first_part},
    ]
    # Recorded: from which host (by its place in OLLAMA_URLS, never its address), where,
    # and why; the numbers are those of the host that finished.
    assert done["stats"]["failover"] == [
        {"from": 0, "to": 1, "at": len(first_part), "reason": LOST}
    ]
    assert answer.stats["failover"] == done["stats"]["failover"]
    assert done["stats"]["eval_count"] == len(REST)
    assert a.url not in json.dumps(done) and b.url not in json.dumps(done)
    note = (
        f"Continued on another server after {len(first_part)} characters: "
        "the connection to Ollama was lost."
    )
    assert done["notes"] == [note]
    html = await page_html(user, conversation)
    assert f'data-testid="answer-note">{note}</p>' in html


async def test_an_error_line_mid_answer_goes_on_on_another_host(a_b, user):
    a, b = a_b
    a.push_reply(
        Reply(content=TOKENS, error_after=4, error="model runner has unexpectedly stopped")
    )
    b.push_reply(Reply(content=REST))
    frames, _ = await ask(user)
    done = frames[-1]
    assert done["status"] == "complete"
    assert text_of(frames) == "".join(TOKENS[:4] + REST)
    assert answered(b)[0]["messages"][-1] == {"role": "assistant", "content": "".join(TOKENS[:4])}
    assert done["stats"]["failover"] == [
        {
            "from": 0,
            "to": 1,
            "at": len("".join(TOKENS[:4])),
            "reason": "model runner has unexpectedly stopped",
        }
    ]
    assert done["notes"] == [
        f"Continued on another server after {len(''.join(TOKENS[:4]))} characters: "
        "model runner has unexpectedly stopped."
    ]
    # The host is up (its runner failed): it is not skipped for the next answers.
    assert hosts.pool().hosts[0].up


async def test_a_host_that_dies_mid_answer_is_left_for_another(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=TOKENS * 20, delay=0.02))
    b.push_reply(Reply(content=REST))
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model="llama3.2"
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Count", "model": "llama3.2"})
    frames = await receive_until(ws, "delta")
    frames += await receive_until(ws, "delta")
    a.stop()  # Ollama A dies: every connection cut
    frames += await receive_until(ws, "done")
    await ws.disconnect()
    done = frames[-1]
    assert done["status"] == "complete"
    partial = answered(b)[0]["messages"][-1]
    assert partial["role"] == "assistant" and "".join(TOKENS * 20).startswith(partial["content"])
    assert text_of(frames) == partial["content"] + "".join(REST)
    assert (await saved(done["id"])).content == text_of(frames)
    assert done["stats"]["failover"][0]["at"] == len(partial["content"])
    assert not hosts.pool().hosts[0].up  # A is skipped for a while


async def test_reasoning_so_far_goes_with_the_partial_answer(a_b, user):
    a, b = a_b
    a.push_reply(Reply(thinking="Let me count.", content=TOKENS, drop_after=7))
    b.push_reply(Reply(content=REST))
    frames, _ = await ask(user, "qwen3")
    done = frames[-1]
    thinking = "Let me count."
    content = "".join(TOKENS[:4])  # 3 thinking chunks, then 4 of content
    assert view_of(frames) == (thinking, content + "".join(REST))
    assert answered(b)[0]["messages"][-1] == {
        "role": "assistant",
        "content": content,
        "thinking": thinking,
    }
    answer = await saved(done["id"])
    assert (answer.thinking, answer.content) == (thinking, content + " and the rest.")
    assert done["stats"]["failover"] == [
        {"from": 0, "to": 1, "at": len(content), "thinking_at": len(thinking), "reason": LOST}
    ]


async def test_a_drop_while_reasoning_goes_on_reasoning(a_b, user):
    a, b = a_b
    a.push_reply(Reply(thinking="Let me count carefully.", content=TOKENS, drop_after=3))
    b.push_reply(Reply(thinking=" now.", content=REST))
    frames, _ = await ask(user, "qwen3")
    done = frames[-1]
    assert answered(b)[0]["messages"][-1] == {
        "role": "assistant",
        "content": "",
        "thinking": "Let me count",
    }
    assert view_of(frames) == ("Let me count now.", "".join(REST))
    assert done["notes"] == [
        "Continued on another server while reasoning: the connection to Ollama was lost."
    ]


async def test_reasoning_found_out_after_the_failover_replaces_the_text_once(a_b, user):
    # The template opened the thinking block: A's text looked like an answer until B's
    # lone </think> showed it was reasoning. One `replace`, the same everywhere.
    a, b = a_b
    a.push_reply(Reply(content=["Okay,", " the user", " asks"], drop_after=3))
    b.push_reply(Reply(content=[" something.\n</think>\n\n", "Final answer."]))
    frames, _ = await ask(user)
    assert answered(b)[0]["messages"][-1] == {"role": "assistant", "content": "Okay, the user asks"}
    assert len([f for f in frames if f.get("replace")]) == 1
    assert view_of(frames) == ("Okay, the user asks something.", "Final answer.")
    answer = await saved(frames[-1]["id"])
    assert (answer.thinking, answer.content) == ("Okay, the user asks something.", "Final answer.")


async def test_a_continued_answer_that_breaks_off_sends_its_whole_text_once(a_b, user):
    a, b = a_b
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model="llama3.2"
    )
    answer = await database_sync_to_async(add_turns)(
        conversation,
        {"role": "user", "content": "Count"},
        {"role": "assistant", "content": "One", "status": "stopped", "model": "llama3.2"},
    )
    a.push_reply(Reply(content=[" two", " three", " four"], drop_after=2))
    b.push_reply(Reply(content=[" five."]))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "continue", "id": str(answer.uuid)})
    frames = await receive_until(ws, "done")
    await ws.disconnect()
    assert frames[-1]["status"] == "complete"
    assert answered(a)[0]["messages"][-1] == {"role": "assistant", "content": "One"}
    assert answered(b)[0]["messages"] == [
        {"role": "user", "content": "Count"},
        {"role": "assistant", "content": "One two three"},
    ]
    assert (await saved(answer.uuid)).content == "One two three five."


async def test_a_third_host_takes_over_when_the_second_breaks_off_too(
    _doubles, a_b, user, settings
):
    a, b = a_b
    c = _doubles[2]
    c.reset()
    settings.OLLAMA_URLS = [a.url, b.url, c.url]
    a.push_reply(Reply(content=["One", " two"], drop_after=1))
    b.push_reply(Reply(content=[" three", " four", " five"], drop_after=1))
    c.push_reply(Reply(content=[" six."]))
    frames, _ = await ask(user)
    done = frames[-1]
    assert done["status"] == "complete"
    assert text_of(frames) == "One three six."
    assert answered(c)[0]["messages"][-1] == {"role": "assistant", "content": "One three"}
    assert done["stats"]["failover"] == [
        {"from": 0, "to": 1, "at": 3, "reason": LOST},
        {"from": 1, "to": 2, "at": 9, "reason": LOST},
    ]
    assert len(done["notes"]) == 2


async def test_a_host_that_cannot_take_over_is_passed_for_the_next(_doubles, a_b, user, settings):
    a, b = a_b
    c = _doubles[2]
    c.reset()
    settings.OLLAMA_URLS = [a.url, b.url, c.url]
    a.push_reply(Reply(content=["One", " two"], drop_after=1))
    b.push_reply(Reply(status=500, error="model runner has unexpectedly stopped"))
    c.push_reply(Reply(content=[" three."]))
    frames, _ = await ask(user)
    done = frames[-1]
    assert done["status"] == "complete" and text_of(frames) == "One three."
    assert done["stats"]["failover"] == [{"from": 0, "to": 2, "at": 3, "reason": LOST}]


# --- when it can't --------------------------------------------------------------------


async def test_with_one_host_a_dropped_stream_fails_with_its_text(fake, user):
    fake.push_reply(Reply(content=TOKENS, drop_after=5))
    frames, _ = await ask(user)
    done = frames[-1]
    assert done["status"] == "failed"
    assert done["error"] == (
        "Ollama failed while answering: the connection to Ollama was lost. "
        "Continue or regenerate the answer."
    )
    answer = await saved(done["id"])
    assert (answer.status, answer.content) == ("failed", "".join(TOKENS[:5]))
    assert "failover" not in done["stats"] and done["notes"] == []
    assert len(fake.chat_requests()) == 1


async def test_when_no_other_host_has_the_model_it_fails_with_its_text(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=TOKENS, drop_after=5), model="solo:7b")
    frames, _ = await ask(user, "solo:7b")
    done = frames[-1]
    assert done["status"] == "failed"
    assert done["error"].startswith("Ollama failed while answering: the connection to Ollama")
    assert (await saved(done["id"])).content == "".join(TOKENS[:5])
    assert not b.chat_requests()  # B was never asked for a model it does not have


async def test_when_the_other_host_breaks_off_too_it_fails_with_all_its_text(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=["One", " two"], drop_after=1))
    b.push_reply(Reply(content=[" three", " four"], error_after=1, error="out of memory"))
    frames, _ = await ask(user)
    done = frames[-1]
    assert done["status"] == "failed"
    assert done["error"] == (
        "Ollama failed while answering: out of memory. Continue or regenerate the answer."
    )
    assert text_of(frames) == "One three"
    answer = await saved(done["id"])
    assert answer.content == "One three"
    assert answer.stats["failover"] == [{"from": 0, "to": 1, "at": 3, "reason": LOST}]
    assert done["notes"] == [
        "Continued on another server after 3 characters: the connection to Ollama was lost."
    ]


async def test_stop_during_a_failover_stops(a_b, user):
    a, b = a_b
    a.push_reply(Reply(content=TOKENS, drop_after=3))
    b.push_reply(Reply(content=REST, first_delay=5))  # a slow load on B
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model="llama3.2"
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Count", "model": "llama3.2"})
    assert await asyncio.to_thread(b.wait_for, lambda: answered(b))
    await ws.send_json_to({"type": "stop"})
    frames = await receive_until(ws, "done")
    await ws.disconnect()
    done = frames[-1]
    assert done["status"] == "stopped"
    assert await asyncio.to_thread(b.wait_for_disconnect)  # B was told to stop too
    answer = await saved(done["id"])
    assert (answer.status, answer.content) == ("stopped", "".join(TOKENS[:3]))
    assert "failover" not in answer.stats  # B never took over
