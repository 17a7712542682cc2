"""Two Daphne processes, PostgreSQL, Redis, two Ollama hosts, real websocket clients."""

import asyncio
import json
import signal
import time

import psycopg
import pytest
import websockets

from tests.conftest import text_of
from tests.fake_ollama import Reply
from tests.scale.conftest import assert_settled
from tests.scale.tabs import Tab

pytestmark = pytest.mark.scale

TOKENS = [f" t{i}" for i in range(80)]
FULL = "".join(TOKENS)


async def open_socket(cluster, index, account, conversation):
    return await websockets.connect(
        f"{cluster.ws(index)}/ws/conversations/{conversation}/",
        additional_headers={"Cookie": account.cookie, "Origin": cluster.url(index)},
    )


async def frames_until(ws, kind, timeout=15.0):
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if frame["type"] == kind:
                return frames


def script(ollama, reply):
    for host in ollama:  # whichever host the answer is routed to
        host.push_reply(reply)


def saved(cluster, message_id):
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(
            "SELECT status, content, error FROM chat_message WHERE uuid = %s", (message_id,)
        ).fetchone()


async def test_two_tabs_on_two_processes_see_the_same_answer_and_stop_works_across(
    both, account, ollama
):
    conversation = account.new_conversation()
    script(ollama, Reply(content=TOKENS, delay=0.01))
    tab_a = await open_socket(both, 0, account, conversation)
    tab_b = await open_socket(both, 1, account, conversation)
    for tab in (tab_a, tab_b):
        assert json.loads(await tab.recv()) == {"type": "snapshot", "message": None}

    await tab_a.send(json.dumps({"type": "send", "content": "Count", "model": "llama3.2"}))
    seen_a, seen_b = await asyncio.gather(frames_until(tab_a, "done"), frames_until(tab_b, "done"))
    assert text_of(seen_a) == text_of(seen_b) == FULL
    assert seen_b[0]["type"] == "message"  # the question shows in the other tab too

    # Stop pressed in the tab on process B stops the answer written by process A.
    script(ollama, Reply(content=TOKENS * 5, delay=0.03))
    await tab_a.send(json.dumps({"type": "send", "content": "Again", "model": "llama3.2"}))
    await frames_until(tab_b, "delta")
    await tab_b.send(json.dumps({"type": "stop"}))
    done_a, done_b = await asyncio.gather(frames_until(tab_a, "done"), frames_until(tab_b, "done"))
    assert done_a[-1]["status"] == done_b[-1]["status"] == "stopped"
    assert any(host.wait_for_disconnect(timeout=3) for host in ollama)
    status, content, _ = saved(both, done_a[-1]["id"])
    assert status == "stopped" and content == text_of(done_a) and 0 < len(content) < len(FULL * 5)
    await tab_a.close()
    await tab_b.close()


async def test_a_tab_reconnecting_to_the_other_process_misses_nothing(both, account, ollama):
    conversation = account.new_conversation()
    script(ollama, Reply(content=TOKENS * 4, delay=0.02))
    tab = await open_socket(both, 0, account, conversation)
    await tab.recv()
    await tab.send(json.dumps({"type": "send", "content": "Count", "model": "llama3.2"}))
    before = await frames_until(tab, "delta")
    await asyncio.sleep(0.3)
    await tab.close()

    again = await open_socket(both, 1, account, conversation)
    after = await frames_until(again, "done")
    assert after[0]["type"] == "snapshot" and after[0]["message"]["status"] == "streaming"
    assert after[0]["message"]["content"].startswith(text_of(before))
    assert text_of(after) == FULL * 4
    assert after[-1]["status"] == "complete"
    await again.close()


# Reasoning the chat template opened: the stream holds a lone </think>, which turns what
# the tabs were shown as the answer into thinking with a `replace` delta.
REASONED = [f" why{i}" for i in range(30)] + ["\n</think>\n\n"] + TOKENS * 10


def saved_texts(cluster, message_id):
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(
            "SELECT status, content, thinking, error FROM chat_message WHERE uuid = %s",
            (message_id,),
        ).fetchone()


@pytest.mark.parametrize("content", [TOKENS * 10, REASONED], ids=["plain", "replaced"])
async def test_a_killed_process_loses_no_text_a_tab_was_shown_and_other_tabs_learn_it_at_once(
    both, account, ollama, content
):
    conversation = account.new_conversation()
    script(ollama, Reply(content=content, delay=0.02))
    writer = await Tab(both, 0, account, conversation).open()
    watcher = await Tab(both, 1, account, conversation).open()
    await writer.send({"type": "send", "content": "Count", "model": "llama3.2"})
    await watcher.wait_for(lambda: watcher.latest() and len(watcher.latest().content) > 40)
    answer_id = watcher.latest().id
    if content is REASONED:  # after the `replace`, with an answer again
        await watcher.wait_for(lambda: watcher.latest().thinking, timeout=10)
        await watcher.wait_for(lambda: len(watcher.latest().content) > 40)
    # Killed while the tabs show more than the last checkpoint holds (it lags by up to
    # CHECKPOINT_SECONDS): before answers were logged in Redis, that much was lost.
    shown = watcher.answers[answer_id]
    async with asyncio.timeout(10):
        while True:
            _, checkpoint, thinking, _ = saved_texts(both, answer_id)
            if len(shown.content + shown.thinking) > len(checkpoint + thinking) + 8:
                break
            await asyncio.sleep(0.01)
    both.kill(0)  # SIGKILL: no chance to save anything more
    killed = time.monotonic()

    # The tab on the surviving process learns within 5 s (relay/liveness.py).
    await watcher.wait_for(lambda: shown.status == "interrupted", timeout=10)
    noticed = time.monotonic() - killed
    assert noticed < 5, f"the other tab was told after {noticed:.1f} s"
    status, saved_content, saved_thinking, error = saved_texts(both, answer_id)
    assert status == "interrupted" and "server stopped" in error
    # The saved text is all that the tab that got furthest showed (content and thinking
    # as split by the `replace` delta), and what the surviving tab shows.
    furthest = max((writer.answers[answer_id], shown), key=lambda answer: answer.shown_seq)
    assert (saved_content, saved_thinking) == (furthest.content, furthest.thinking)
    assert (shown.content, shown.thinking) == (saved_content, saved_thinking)
    assert saved_content and (saved_thinking != "") == (content is REASONED)

    script(ollama, Reply(content=" and done."))
    await watcher.send({"type": "continue", "id": answer_id})
    # `start` (a continued answer) shows the same message anew.
    await watcher.wait_for(
        lambda: watcher.answers[answer_id] is not shown and watcher.settled(answer_id), timeout=10
    )
    assert watcher.answers[answer_id].status == "complete"
    assert saved_texts(both, answer_id)[1] == saved_content + " and done."
    await writer.close()
    await watcher.close()
    assert_settled(both.env["DATABASE_URL"])


async def test_sigterm_saves_running_answers_before_exiting(both, account, ollama):
    conversation = account.new_conversation()
    script(ollama, Reply(content=TOKENS * 10, delay=0.02))
    writer = await open_socket(both, 1, account, conversation)
    watcher = await open_socket(both, 0, account, conversation)
    await writer.recv()
    await watcher.recv()
    await writer.send(json.dumps({"type": "send", "content": "Count", "model": "llama3.2"}))
    seen = await frames_until(watcher, "delta")
    await asyncio.sleep(0.5)
    both.kill(1, signal.SIGTERM)
    seen += await frames_until(watcher, "done", timeout=15)
    assert seen[-1]["status"] == "interrupted"
    status, content, _ = saved(both, seen[-1]["id"])
    # Nothing lost: the final text is everything the tab saw.
    assert status == "interrupted" and content == text_of(seen)
    await watcher.close()


async def test_answers_go_to_a_host_that_has_the_model_and_fail_over(both, account, ollama):
    first, second = ollama
    first.remove_model("llava:latest")
    conversation = account.new_conversation("llava")
    tab = await open_socket(both, 0, account, conversation)
    await tab.recv()
    await tab.send(json.dumps({"type": "send", "content": "Hi", "model": "llava"}))
    assert (await frames_until(tab, "done"))[-1]["status"] == "complete"
    assert second.chat_requests() and not first.chat_requests()

    # Prefer the host where the model is already loaded.
    first.reset()
    second.reset()
    import httpx

    httpx.post(f"{first.url}/api/chat", json={"model": "qwen3", "messages": []})
    await asyncio.sleep(5.5)  # host lists are trusted for 5 s
    await tab.send(json.dumps({"type": "send", "content": "Hi", "model": "qwen3"}))
    assert (await frames_until(tab, "done"))[-1]["status"] == "complete"
    assert [r for r in first.chat_requests() if r.get("messages")]
    assert not second.chat_requests()

    # A host that stops answering is skipped: the answer still comes.
    first.stop()
    await tab.send(json.dumps({"type": "send", "content": "Still there?", "model": "llama3.2"}))
    assert (await frames_until(tab, "done"))[-1]["status"] == "complete"
    assert second.chat_requests()
    # The model list shows every host's models.
    listed = account.client.get("/api/models/").json()["models"]
    assert {"llama3.2:latest", "qwen3:latest"} <= {m["name"] for m in listed}
    await tab.close()
