"""Reasoning whose opening tag the chat template wrote: the stream holds only `</think>`.
What the socket sends, what tabs joining at any moment see, and what is saved."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from tests.conftest import connect, receive, receive_until
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)

LONE = ["Okay, the user asks", " something.\n</think>\n\n", "Final answer."]
THINKING, ANSWER = "Okay, the user asks something.", "Final answer."


def view_of(frames: list[dict]) -> tuple[str, str]:
    """(thinking, answer) a browser shows after applying these frames in order."""
    thinking = content = ""
    seq = None
    for frame in frames:
        message = frame.get("message")
        if frame["type"] in ("snapshot", "start") and message:
            thinking, content = message["thinking"], message["content"]
            seq = message.get("seq", seq)
        elif frame["type"] == "delta" and (seq is None or frame["seq"] > seq):
            assert seq is None or frame["seq"] == seq + 1, "a delta was skipped"
            seq = frame["seq"]
            if frame.get("replace"):
                thinking, content = frame.get("thinking", ""), frame.get("content", "")
            else:
                thinking += frame.get("thinking", "")
                content += frame.get("content", "")
    return thinking, content


@database_sync_to_async
def saved_answer(conversation):
    return conversation.messages.filter(role="assistant").order_by("id").last()


async def send(ws, content="What is it?", model="llama3.2"):
    await ws.send_json_to({"type": "send", "content": content, "model": model, "client_id": "c"})


async def test_a_lone_closing_tag_turns_the_streamed_answer_into_thinking(fake, user, conversation):
    fake.push_reply(Reply(content=LONE, delay=0.1))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")

    deltas = [f for f in frames if f["type"] == "delta"]
    # Shown live as the answer first, since nothing said otherwise yet...
    assert deltas[0].get("content") == "Okay, the user asks" and "replace" not in deltas[0]
    # ...then moved, once, when the tag arrived.
    [moved] = [d for d in deltas if d.get("replace")]
    assert moved["thinking"] == THINKING
    assert ANSWER.startswith(moved.get("content", ""))
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert not any("</think>" in d.get("content", "") + d.get("thinking", "") for d in deltas)
    assert view_of(frames) == (THINKING, ANSWER)
    done = frames[-1]
    assert done["status"] == "complete" and done["seq"] == deltas[-1]["seq"]
    assert done["stats"]["thinking_ms"] >= 100  # from the first token to the answer

    answer = await saved_answer(conversation)
    assert (answer.status, answer.thinking, answer.content) == ("complete", THINKING, ANSWER)
    # A sync after the end gives the saved message, the same.
    await ws.send_json_to({"type": "sync", "id": str(answer.uuid)})
    snapshot = await receive(ws)
    assert (snapshot["message"]["thinking"], snapshot["message"]["content"]) == (THINKING, ANSWER)
    await ws.disconnect()


async def test_tabs_joining_before_and_after_the_tag_end_up_showing_the_same(
    fake, user, conversation
):
    fake.push_reply(Reply(content=LONE, delay=0.4))
    first = await connect(conversation.uuid, user)
    await receive(first)
    await send(first)
    seen = await receive_until(first, "delta")

    # Joins while the reasoning still looks like the answer.
    early = await connect(conversation.uuid, user)
    early_frames = [await receive(early)]
    assert early_frames[0]["message"]["content"] == "Okay, the user asks"

    seen += await receive_until(first, "delta")
    assert seen[-1].get("replace")
    await asyncio.sleep(0.25)  # a checkpoint after the move (CHECKPOINT_SECONDS is 0.2)
    answer = await saved_answer(conversation)
    assert (answer.status, answer.thinking, answer.content) == ("streaming", THINKING, "")

    # Joins after the move, before the answer's text: a reload mid-stream.
    late = await connect(conversation.uuid, user)
    snapshot = await receive(late)
    assert snapshot["message"]["thinking"] == THINKING
    assert snapshot["message"]["content"] == ""
    assert snapshot["message"]["seq"] == seen[-1]["seq"]

    seen += await receive_until(first, "done")
    early_frames += await receive_until(early, "done")
    late_frames = [snapshot, *await receive_until(late, "done")]
    assert view_of(seen) == view_of(early_frames) == view_of(late_frames) == (THINKING, ANSWER)
    for ws in (first, early, late):
        await ws.disconnect()


async def test_the_reasoning_goes_back_to_ollama_as_thinking(fake, user, conversation):
    fake.push_reply(Reply(content=LONE))
    fake.push_reply(Reply(content="Sure."))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, "First?")
    await receive_until(ws, "done")
    await send(ws, "Second?")
    await receive_until(ws, "done")
    assert fake.last_chat()["messages"][1] == {
        "role": "assistant",
        "content": ANSWER,
        "thinking": THINKING,
    }
    await ws.disconnect()


async def test_ollamas_own_thinking_leaves_content_as_it_is(fake, user, conversation):
    content = ["Okay, so", " the tag </think>", " stays."]
    fake.push_reply(Reply(content=content, thinking="Real reasoning.", delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, model="qwen3")
    frames = await receive_until(ws, "done")
    assert not any(f.get("replace") for f in frames)
    assert view_of(frames) == ("Real reasoning.", "Okay, so the tag </think> stays.")
    answer = await saved_answer(conversation)
    assert (answer.thinking, answer.content) == (
        "Real reasoning.",
        "Okay, so the tag </think> stays.",
    )
    await ws.disconnect()


async def test_a_stopped_reasoning_continued_up_to_the_tag_becomes_thinking(
    fake, user, conversation
):
    fake.push_reply(Reply(content=["Okay,", " the user", " asks"] + [" more"] * 50, delay=0.05))
    fake.push_reply(Reply(content=[" something.\n</think>\n\n", "Final answer."]))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    await receive_until(ws, "delta")
    await ws.send_json_to({"type": "stop"})
    stopped = (await receive_until(ws, "done"))[-1]
    partial = (await saved_answer(conversation)).content
    assert partial.startswith("Okay,")

    await ws.send_json_to({"type": "continue", "id": stopped["id"]})
    frames = await receive_until(ws, "done")
    assert view_of(frames) == (partial.strip() + " something.", ANSWER)
    answer = await saved_answer(conversation)
    assert (answer.status, answer.thinking, answer.content) == (
        Message.Status.COMPLETE,
        partial.strip() + " something.",
        ANSWER,
    )
    await ws.disconnect()
