"""Two Daphne processes sharing Redis, two Ollama hosts: a host killed mid-answer (the
answer goes on on the other), one line with true places for a busy Ollama, and routing
that sees the answers in flight from every process. Each test ends by checking the
database: no answer left `streaming`, and every saved text is what the tabs showed."""

import asyncio
import json

import psycopg
import pytest

from tests.conftest import text_of
from tests.fake_ollama import Reply
from tests.scale.test_scale import frames_until, open_socket

pytestmark = pytest.mark.scale

TOKENS = [f" t{i}" for i in range(80)]
REST = [" and", " the", " rest."]


def rows(cluster, conversations: list[str]) -> list[tuple]:
    """(message uuid, status, content, stats) of the answers in these conversations."""
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(
            "SELECT m.uuid::text, m.status, m.content, m.stats FROM chat_message m "
            "JOIN chat_conversation c ON c.id = m.conversation_id "
            "WHERE m.role = 'assistant' AND c.uuid::text = ANY(%s)",
            (conversations,),
        ).fetchall()


def check_invariants(cluster, conversations: list[str], seen: dict[str, str]) -> None:
    """Nothing left streaming; each saved text is the one its tab ended with."""
    found = rows(cluster, conversations)
    assert found and all(status != "streaming" for _, status, _, _ in found), found
    saved = {uuid: content for uuid, _, content, _ in found}
    for message_id, text in seen.items():
        assert saved[message_id] == text


def serving(ollama) -> list:
    """The hosts with an answer streaming right now."""
    return [
        host
        for host in ollama
        if any(r.path == "/api/chat" and r.status == 200 and not r.finished for r in host.requests)
    ]


async def test_a_host_killed_mid_answer_with_two_hosts_the_answer_completes(both, account, ollama):
    conversation = account.new_conversation()
    for host in ollama:
        host.push_reply(Reply(content=TOKENS * 4, delay=0.02))
    writer = await open_socket(both, 0, account, conversation)
    watcher = await open_socket(both, 1, account, conversation)
    await writer.recv()
    await watcher.recv()
    await writer.send(json.dumps({"type": "send", "content": "Count", "model": "llama3.2"}))
    seen = await frames_until(watcher, "delta")
    await asyncio.sleep(1.0)
    [dying] = serving(ollama)
    [survivor] = [host for host in ollama if host is not dying]
    survivor.reset()
    survivor.push_reply(Reply(content=REST))
    dying.stop()  # Ollama killed: every connection cut mid-answer

    seen += await frames_until(watcher, "done")
    written = await frames_until(writer, "done")
    done = seen[-1]
    assert done["status"] == "complete" and done["error"] == ""
    [continued] = [r for r in survivor.chat_requests() if r.get("messages")]
    partial = continued["messages"][-1]
    assert partial["role"] == "assistant" and partial["content"]
    assert "".join(TOKENS * 4).startswith(partial["content"])
    # The first part, then the continuation, in both tabs: nothing lost, nothing twice.
    assert text_of(seen) == text_of(written) == partial["content"] + "".join(REST)
    [move] = done["stats"]["failover"]
    assert move["at"] == len(partial["content"]) and move["to"] == ollama.index(survivor)
    assert done["notes"] and "Continued on another server" in done["notes"][0]
    check_invariants(both, [conversation], {done["id"]: text_of(seen)})
    [(_, _, _, stats)] = rows(both, [conversation])
    assert stats["failover"] == [move]
    await writer.close()
    await watcher.close()


async def test_one_line_for_a_busy_ollama_with_true_places_across_two_processes(
    both, account, ollama
):
    for host in ollama:
        host.busy = True
    conversations = [account.new_conversation() for _ in range(6)]
    tabs = []
    places = []
    for index, conversation in enumerate(conversations):
        tab = await open_socket(both, index % 2, account, conversation)  # both processes
        await tab.recv()
        await tab.send(json.dumps({"type": "send", "content": f"q{index}", "model": "llama3.2"}))
        places.append((await frames_until(tab, "queued"))[-1]["position"])
        tabs.append(tab)
    assert places == [1, 2, 3, 4, 5, 6]  # no two answers told the same place

    for host in ollama:
        host.busy = False
    seen = {}
    for tab in tabs:
        frames = await frames_until(tab, "done", timeout=30)
        assert frames[-1]["status"] == "complete"
        seen[frames[-1]["id"]] = text_of(frames)
    # As the hosts freed up, the answers started in the order they came.
    taken = sorted(
        (r.started_at, r.body["messages"][-1]["content"])
        for host in ollama
        for r in host.requests
        if r.path == "/api/chat" and r.status == 200 and r.body.get("messages")
    )
    assert [question for _, question in taken] == [f"q{i}" for i in range(6)]
    check_invariants(both, conversations, seen)
    for tab in tabs:
        await tab.close()


async def test_routing_on_one_process_avoids_the_host_busy_with_the_other_process_answers(
    both, account, ollama
):
    first, second = ollama
    first.add_model("only-first:1b")
    for host in ollama:
        host.add_model("everywhere:1b")
    for _ in range(2):
        first.push_reply(Reply(content=TOKENS * 4, delay=0.03), model="only-first:1b")
    # The processes trust host model lists for 5 s, and skip a host that failed (an
    # earlier test may have killed one) for 10 s without reading its list.
    await asyncio.sleep(10.5)

    # Process 0 streams two long answers, both from the first host (only it has that model).
    busy = [account.new_conversation("only-first:1b") for _ in range(2)]
    long_tabs = []
    for conversation in busy:
        tab = await open_socket(both, 0, account, conversation)
        await tab.recv()
        await tab.send(json.dumps({"type": "send", "content": "Long", "model": "only-first:1b"}))
        long_tabs.append((tab, await frames_until(tab, "delta")))

    # Process 1, which streams nothing itself, sends its answer to the other host.
    conversation = account.new_conversation("everywhere:1b")
    tab = await open_socket(both, 1, account, conversation)
    await tab.recv()
    await tab.send(json.dumps({"type": "send", "content": "Short", "model": "everywhere:1b"}))
    frames = await frames_until(tab, "done")
    assert frames[-1]["status"] == "complete"
    assert len([r for r in second.chat_requests() if r["model"] == "everywhere:1b"]) == 1
    assert not [r for r in first.chat_requests() if r["model"] == "everywhere:1b"]

    seen = {frames[-1]["id"]: text_of(frames)}
    for long_tab, before in long_tabs:
        await long_tab.send(json.dumps({"type": "stop"}))
        stopped = before + await frames_until(long_tab, "done")
        assert stopped[-1]["status"] == "stopped"
        seen[stopped[-1]["id"]] = text_of(stopped)
        await long_tab.close()
    check_invariants(both, [conversation, *busy], seen)
    await tab.close()
