"""The chat socket against the Ollama test double, through the full ASGI stack."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from tests.conftest import add_turns, connect, receive, receive_until, text_of
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)

Status = Message.Status


@database_sync_to_async
def answers(conversation):
    return list(conversation.messages.filter(role="assistant").order_by("id"))


@database_sync_to_async
def refresh(obj):
    obj.refresh_from_db()
    return obj


async def wait_for_status(conversation, status, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await answers(conversation)
        if found and found[-1].status == status:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no answer reached {status}: {[a.status for a in found]}")


async def send(ws, content="Why is the sky blue?", model="llama3.2", client_id="c1"):
    await ws.send_json_to(
        {"type": "send", "content": content, "model": model, "client_id": client_id}
    )


async def test_it_streams_an_answer_and_saves_it_with_stats(fake, user, conversation):
    fake.push_reply(Reply(content="The sky scatters blue light most.", delay=0.01))
    ws = await connect(conversation.uuid, user)
    assert await receive(ws) == {"type": "snapshot", "message": None}

    await send(ws)
    frames = await receive_until(ws, "done")
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "message" and kinds[1] == "start" and kinds[-1] == "done"
    assert frames[0]["client_id"] == "c1"
    assert frames[0]["message"]["content"] == "Why is the sky blue?"
    assert text_of(frames) == "The sky scatters blue light most."
    done = frames[-1]
    assert done["status"] == "complete" and done["error"] == ""
    assert done["stats"]["eval_count"] == 6
    assert done["stats"]["done_reason"] == "stop"

    [answer] = await answers(conversation)
    assert answer.status == Status.COMPLETE
    assert answer.content == "The sky scatters blue light most."
    assert answer.stats["eval_count"] == 6 and answer.stats["eval_duration"] > 0
    assert answer.tokens_per_second > 0
    assert answer.task_channel == ""
    assert fake.last_chat()["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
    assert fake.last_chat()["stream"] is True
    await ws.disconnect()


async def test_it_coalesces_tokens_into_few_frames(fake, user, conversation):
    tokens = [f" w{i}" for i in range(100)]
    fake.push_reply(Reply(content=tokens, delay=0.001))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")
    deltas = [frame for frame in frames if frame["type"] == "delta"]
    assert text_of(frames) == "".join(tokens)
    # 100 tokens in ~0.1 s with a 20 ms window: a handful of frames, not one per token.
    assert 1 <= len(deltas) < 30
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    await ws.disconnect()


async def test_it_sends_the_whole_history_with_the_system_prompt(fake, user, conversation):
    conversation.system_prompt = "Answer like a pirate."
    await database_sync_to_async(conversation.save)()
    fake.push_reply(Reply(content="Arr, hello.", thinking="They greet me."))
    fake.push_reply(Reply(content="Arr, fine."))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, "Hello", model="qwen3")
    first = await receive_until(ws, "done")
    assert first[-1]["status"] == "complete"
    await send(ws, "How are you?", model="qwen3")
    await receive_until(ws, "done")

    assert fake.last_chat()["messages"] == [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Arr, hello.", "thinking": "They greet me."},
        {"role": "user", "content": "How are you?"},
    ]
    await ws.disconnect()


async def test_thinking_is_streamed_and_saved_apart(fake, user, conversation):
    fake.push_reply(Reply(content="Four.", thinking="Two plus two is four.", delay=0.01))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, "2+2?", model="qwen3")
    frames = await receive_until(ws, "done")
    thinking = "".join(f.get("thinking", "") for f in frames if f["type"] == "delta")
    assert thinking == "Two plus two is four."
    assert text_of(frames) == "Four."
    assert frames[-1]["stats"]["thinking_ms"] >= 0
    [answer] = await answers(conversation)
    assert (answer.thinking, answer.content) == ("Two plus two is four.", "Four.")
    await ws.disconnect()


async def test_think_tags_in_content_from_old_servers_are_split_out(fake, user, conversation):
    fake.push_reply(Reply(content="Four.", thinking="Two and two.", legacy_think=True))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, "2+2?")
    await receive_until(ws, "done")
    [answer] = await answers(conversation)
    assert answer.content == "Four."
    assert answer.thinking.strip() == "Two and two."
    await ws.disconnect()


async def test_stop_keeps_the_partial_text_and_closes_the_stream_to_ollama(
    fake, user, conversation
):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(200)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "delta")
    await ws.send_json_to({"type": "stop"})
    frames += await receive_until(ws, "done")
    assert frames[-1]["status"] == "stopped"
    assert fake.wait_for_disconnect(timeout=2), "Ollama never saw the connection close"

    answer = await wait_for_status(conversation, Status.STOPPED)
    assert answer.content.startswith(" t0")
    assert answer.content == text_of(frames)
    assert len(answer.content.split()) < 200
    await ws.disconnect()


async def test_closing_the_tab_does_not_stop_the_answer(fake, user, conversation):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(30)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    await receive_until(ws, "delta")
    await ws.disconnect()

    answer = await wait_for_status(conversation, Status.COMPLETE)
    assert answer.content == "".join(f" t{i}" for i in range(30))
    assert not fake.wait_for_disconnect(timeout=0.1)


async def test_a_second_tab_joining_mid_answer_gets_the_snapshot_and_the_rest(
    fake, user, conversation
):
    tokens = [f" t{i}" for i in range(40)]
    fake.push_reply(Reply(content=tokens, delay=0.02))
    first = await connect(conversation.uuid, user)
    await receive(first)
    await send(first)
    await receive_until(first, "delta")
    await asyncio.sleep(0.2)

    second = await connect(conversation.uuid, user)
    snapshot = await receive(second)
    assert snapshot["type"] == "snapshot"
    assert snapshot["message"]["status"] == "streaming"
    assert snapshot["message"]["content"].startswith(" t0 t1")
    assert snapshot["message"]["seq"] >= 1
    rest = await receive_until(second, "done")
    assert text_of([snapshot, *rest]) == "".join(tokens)
    await first.disconnect()
    await second.disconnect()


async def test_a_checkpoint_is_saved_while_streaming(fake, user, conversation):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(60)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    await asyncio.sleep(0.6)  # CHECKPOINT_SECONDS is 0.2 in tests
    [answer] = await answers(conversation)
    assert answer.status == Status.STREAMING
    assert answer.content.startswith(" t0")
    await receive_until(ws, "done")
    await ws.disconnect()


async def test_ollama_down_fails_the_answer_with_a_clear_error(settings, user, conversation):
    settings.OLLAMA_URL = "http://127.0.0.1:9"  # nothing listens there
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")
    assert frames[0]["type"] == "message"  # the question is saved, nothing is lost
    assert frames[-1]["status"] == "failed"
    assert "not reachable" in frames[-1]["error"]
    answer = await wait_for_status(conversation, Status.FAILED)
    assert "not reachable" in answer.error
    await ws.disconnect()


async def test_an_unknown_model_fails_the_answer_with_ollamas_message(fake, user, conversation):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, model="nosuchmodel")
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "failed"
    assert "model 'nosuchmodel' not found" in frames[-1]["error"]
    assert "not installed" in frames[-1]["error"]
    await wait_for_status(conversation, Status.FAILED)
    await ws.disconnect()


async def test_an_error_line_mid_stream_fails_the_answer_keeping_its_text(fake, user, conversation):
    fake.push_reply(
        Reply(
            content=["Half", " an", " answer", " more"],
            error_after=2,
            error="model runner has unexpectedly stopped",
        )
    )
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "failed"
    assert "model runner has unexpectedly stopped" in frames[-1]["error"]
    answer = await wait_for_status(conversation, Status.FAILED)
    assert answer.content == "Half an"


async def test_a_dropped_connection_fails_the_answer_keeping_its_text(fake, user, conversation):
    fake.push_reply(Reply(content=["Half", " an", " answer", " more"], drop_after=2))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "failed"
    assert "lost" in frames[-1]["error"] or "before finishing" in frames[-1]["error"]
    answer = await wait_for_status(conversation, Status.FAILED)
    assert answer.content == "Half an"


async def test_a_busy_ollama_puts_the_answer_in_line_until_it_has_room(
    fake, user, conversation, settings
):
    settings.QUEUE_RETRY_SECONDS = 0.1
    fake.busy = True
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "queued")
    assert frames[-1]["position"] == 1
    fake.busy = False
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "complete"
    assert text_of(frames) == "Hello! How can I help you today?"
    await ws.disconnect()


async def test_an_answer_waits_in_line_only_so_long(fake, user, conversation, settings):
    settings.QUEUE_RETRY_SECONDS = 0.05
    settings.QUEUE_TIMEOUT_SECONDS = 0.3
    fake.busy = True
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    frames = await receive_until(ws, "done")
    assert "queued" in [frame["type"] for frame in frames]
    assert frames[-1]["status"] == "failed"
    assert "busy" in frames[-1]["error"]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"type": "launch"}', "bad_frame"),
        ('{"type": "send", "content": "", "model": "llama3.2"}', "invalid"),
        ('{"type": "send", "content": "hi", "model": "bad name!"}', "invalid"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_usable(
    fake, user, conversation, frame, code
):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_to(text_data=frame)
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await send(ws)
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "complete"
    await ws.disconnect()


async def test_oversized_and_binary_frames_are_refused(fake, user, conversation, settings):
    settings.MAX_MESSAGE_CHARS = 100
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws, "x" * 101)
    error = await receive(ws)
    assert (error["code"], error["client_id"]) == ("too_large", "c1")
    assert "limit is 100" in error["message"]
    await ws.send_to(text_data="y" * (settings.MAX_FRAME_BYTES + 1))
    assert (await receive(ws))["code"] == "too_large"
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await receive(ws))["code"] == "bad_frame"
    assert await database_sync_to_async(conversation.messages.count)() == 0
    await send(ws, "short")
    assert (await receive_until(ws, "done"))[-1]["status"] == "complete"
    await ws.disconnect()


async def test_a_second_send_while_answering_is_refused(fake, user, conversation):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(30)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    await receive_until(ws, "start")
    await send(ws, "And another thing", client_id="c2")
    frames = await receive_until(ws, "error")
    assert frames[-1]["code"] == "busy" and frames[-1]["client_id"] == "c2"
    await receive_until(ws, "done")
    assert await database_sync_to_async(conversation.messages.count)() == 2
    await ws.disconnect()


async def test_a_strangers_conversation_is_refused_without_data(fake, other_user, conversation):
    ws = await connect(conversation.uuid, other_user)
    output = await ws.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4404}


async def test_an_unknown_conversation_is_refused(fake, user):
    import uuid

    ws = await connect(uuid.uuid4(), user)
    assert (await ws.receive_output(timeout=2))["code"] == 4404


async def test_an_anonymous_socket_is_refused(fake, conversation):
    ws = await connect(conversation.uuid, None)
    assert (await ws.receive_output(timeout=2)) == {"type": "websocket.close", "code": 4401}


async def test_a_socket_from_another_origin_is_refused(fake, user, conversation):
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.uuid}/",
        headers=[(b"origin", b"http://evil.example"), (b"host", b"localhost")],
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_stranger_cannot_stop_or_read_anothers_answer(fake, user, other_user, conversation):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(20)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    await receive_until(ws, "delta")
    own = await database_sync_to_async(Conversation.objects.create)(owner=other_user, model="x")
    intruder = await connect(own.uuid, other_user)
    await receive(intruder)
    [answer] = await answers(conversation)
    await intruder.send_json_to({"type": "sync", "id": str(answer.uuid)})
    assert (await receive(intruder))["code"] == "not_found"
    await intruder.send_json_to({"type": "stop"})
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "complete"
    await ws.disconnect()
    await intruder.disconnect()


async def test_a_pending_user_cannot_chat(fake, settings, staff_user):
    from chat import services

    settings.SIGNUP_MODE = "approval"
    pending = await database_sync_to_async(services.register_user)("newbie", "a-long-pass-1")
    conversation = await database_sync_to_async(Conversation.objects.create)(
        owner=pending, model="llama3.2"
    )
    ws = await connect(conversation.uuid, pending)
    assert (await ws.receive_output(timeout=2))["code"] == 4403


async def test_an_answer_left_streaming_by_a_dead_process_is_marked_interrupted(
    fake, user, conversation
):
    @database_sync_to_async
    def orphan():
        return add_turns(
            conversation,
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "status": Status.STREAMING,
                "content": "Half a",
                "model": "llama3.2",
                "task_channel": "generation.gone!abc",
            },
        )

    message = await orphan()
    ws = await connect(conversation.uuid, user)
    assert await receive(ws) == {"type": "snapshot", "message": None}
    message = await refresh(message)
    assert message.status == Status.INTERRUPTED
    assert message.content == "Half a"
    # The conversation is usable again: a new question gets an answer.
    await send(ws)
    assert (await receive_until(ws, "done"))[-1]["status"] == "complete"
    await ws.disconnect()


async def test_sync_returns_the_saved_message_once_it_is_finished(fake, user, conversation):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await send(ws)
    done = (await receive_until(ws, "done"))[-1]
    await ws.send_json_to({"type": "sync", "id": done["id"]})
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot"
    assert snapshot["message"]["status"] == "complete"
    assert snapshot["message"]["content"] == "Hello! How can I help you today?"
    await ws.disconnect()
