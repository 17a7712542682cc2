"""The line for a busy Ollama (every host answered 503) in one process, without Redis:
first come, first served. Only the first in line asks Ollama; a new answer joins behind
those waiting; one that leaves (it got through, or was stopped) lets the next go at once.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation
from tests.conftest import connect, receive, receive_until
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def open_chat(user):
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=user, model="llama3.2"
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    return ws


async def ask(ws, content: str) -> None:
    await ws.send_json_to({"type": "send", "content": content, "model": "llama3.2"})


def started(fake) -> list[str]:
    """The questions Ollama took (not answered 503), in the order it took them."""
    return [
        r.body["messages"][-1]["content"]
        for r in fake.requests
        if r.path == "/api/chat" and r.status == 200 and r.body.get("messages")
    ]


async def test_answers_wait_in_line_and_start_in_the_order_they_came(fake, user, settings):
    settings.QUEUE_RETRY_SECONDS = 0.2
    fake.busy = True
    tabs = [await open_chat(user) for _ in range(3)]
    positions = []
    for index, ws in enumerate(tabs):
        await ask(ws, f"q{index}")
        positions.append((await receive_until(ws, "queued"))[-1]["position"])
    assert positions == [1, 2, 3]
    # Only the first in line asks Ollama while it is busy.
    asked = {r.body["messages"][-1]["content"] for r in fake.requests if r.path == "/api/chat"}
    assert asked == {"q0"}
    fake.busy = False
    for ws in tabs:
        assert (await receive_until(ws, "done"))[-1]["status"] == "complete"
        await ws.disconnect()
    assert started(fake) == ["q0", "q1", "q2"]


async def test_a_new_answer_does_not_pass_those_waiting(fake, user, settings):
    settings.QUEUE_RETRY_SECONDS = 0.5
    fake.busy = True
    first = await open_chat(user)
    await ask(first, "first")
    await receive_until(first, "queued")
    fake.busy = False  # room again, before the waiting answer retries...
    second = await open_chat(user)
    await ask(second, "second")  # ...but this one came later: it goes behind
    assert (await receive_until(second, "queued"))[-1]["position"] == 2
    for ws in (first, second):
        assert (await receive_until(ws, "done"))[-1]["status"] == "complete"
        await ws.disconnect()
    assert started(fake) == ["first", "second"]


async def test_an_answer_stopped_in_line_lets_the_next_one_go(fake, user, settings):
    settings.QUEUE_RETRY_SECONDS = 30  # nobody retries by the clock in this test
    fake.busy = True
    first, second = await open_chat(user), await open_chat(user)
    await ask(first, "first")
    await receive_until(first, "queued")
    await ask(second, "second")
    assert (await receive_until(second, "queued"))[-1]["position"] == 2
    fake.busy = False
    loop = asyncio.get_running_loop()
    began = loop.time()
    await first.send_json_to({"type": "stop"})
    assert (await receive_until(first, "done"))[-1]["status"] == "stopped"
    # Woken at once, not at its next retry.
    assert (await receive_until(second, "done", timeout=5))[-1]["status"] == "complete"
    assert loop.time() - began < 5
    assert started(fake) == ["second"]
    await first.disconnect()
    await second.disconnect()


async def test_the_first_in_line_that_gets_through_wakes_the_next(fake, user, settings):
    settings.QUEUE_RETRY_SECONDS = 1.0
    fake.busy = True
    fake.push_reply(Reply(content="One."))
    fake.push_reply(Reply(content="Two."))
    first, second = await open_chat(user), await open_chat(user)
    await ask(first, "first")
    await receive_until(first, "queued")
    await asyncio.sleep(0.5)  # their retries are half a period apart
    await ask(second, "second")
    await receive_until(second, "queued")
    fake.busy = False
    done_first = await receive_until(first, "done")
    done_second = await receive_until(second, "done")
    assert done_first[-1]["status"] == done_second[-1]["status"] == "complete"
    firsts = [r.started_at for r in fake.requests if r.path == "/api/chat" and r.status == 200]
    # The second went as soon as the first had its first token, not a retry later.
    assert started(fake) == ["first", "second"]
    assert firsts[1] - firsts[0] < 0.25
    await first.disconnect()
    await second.disconnect()
