"""A conversation that no longer fits in the model's context window: Ollama drops its start
silently, so the answer says so (live and saved), and the page shows how full it is."""

import re

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.conftest import connect, receive, receive_until
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = (
    "The conversation no longer fits in the model's context window ({} tokens), so the "
    "model did not see its oldest part. Raise num_ctx in this chat's settings, or start a "
    "new chat."
)


@database_sync_to_async
def set_options(conversation, **options):
    conversation.options = options
    conversation.save(update_fields=["options"])


@database_sync_to_async
def saved_answer(conversation):
    return conversation.messages.filter(role="assistant").order_by("id").last()


@database_sync_to_async
def page_html(user, conversation) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/c/{conversation.uuid}/")
    assert response.status_code == 200
    return response.content.decode()


def gauge_of(html: str) -> dict:
    """The composer's gauge as rendered: hidden or not, meter numbers, percentage."""
    block = re.search(r'<div class="context-gauge".*?</div>', html, re.S).group(0)
    meter = re.search(r'<meter[^>]*max="(\d+)" value="(\d+)"', block, re.S)
    return {
        "hidden": " hidden>" in block.split("\n", 1)[0],
        "max": int(meter.group(1)),
        "value": int(meter.group(2)),
        "percent": re.search(r'percent" aria-hidden="true">(\d+)%', block).group(1),
    }


async def answer(conversation, user, model="llama3.2") -> dict:
    """Ask once (the reply is scripted before); the `done` frame."""
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "And now?", "model": model})
    done = (await receive_until(ws, "done"))[-1]
    await ws.disconnect()
    assert done["status"] == "complete", done
    return done


async def test_a_prompt_that_filled_num_ctx_gets_a_note_live_and_after_reload(
    fake, user, conversation
):
    await set_options(conversation, num_ctx=2048)
    fake.push_reply(Reply(content="Short answer.", prompt_eval_count=2048))
    done = await answer(conversation, user)

    assert fake.last_chat()["options"] == {"num_ctx": 2048}
    assert done["stats"]["prompt_eval_count"] == 2048
    assert done["stats"]["context_window"] == 2048
    assert done["notes"] == [NOTE.format("2,048")]
    saved = await saved_answer(conversation)
    assert saved.stats["context_window"] == 2048

    html = await page_html(user, conversation)
    assert NOTE.format("2,048").replace("'", "&#x27;") in html
    assert 'data-testid="answer-note"' in html
    assert f'data-context-used="{2048 + saved.stats["eval_count"]}"' in html
    assert gauge_of(html) == {
        "hidden": False,
        "max": 2048,
        "value": 2048 + saved.stats["eval_count"],
        "percent": "100",
    }


async def test_a_prompt_that_fits_gets_no_note(fake, user, conversation):
    await set_options(conversation, num_ctx=2048)
    fake.push_reply(Reply(content="Short answer.", prompt_eval_count=1000))
    done = await answer(conversation, user)
    assert done["stats"]["context_window"] == 2048
    assert done["notes"] == []

    html = await page_html(user, conversation)
    assert "answer-note" not in html
    assert "did not see" not in html
    assert gauge_of(html) == {"hidden": False, "max": 2048, "value": 1002, "percent": "49"}


async def test_without_num_ctx_the_window_is_what_the_model_was_loaded_with(
    fake, user, conversation
):
    # The double loads llama3.2 (131,072 tokens of its own) with 4,096, like a server
    # whose OLLAMA_CONTEXT_LENGTH (or memory) says so: /api/ps tells.
    fake.push_reply(Reply(content="Short answer.", prompt_eval_count=4096))
    done = await answer(conversation, user)
    assert "options" not in fake.last_chat()
    assert any(r.path == "/api/ps" for r in fake.requests)
    assert done["stats"]["context_window"] == 4096
    assert done["notes"] == [NOTE.format("4,096")]


async def test_num_ctx_beyond_the_models_own_length_counts_as_that_length(fake, user, conversation):
    await set_options(conversation, num_ctx=65536)  # llava was made for 32,768
    fake.push_reply(Reply(content="A cat.", prompt_eval_count=32768))
    done = await answer(conversation, user, model="llava")
    assert done["stats"]["context_window"] == 32768
    assert done["notes"] == [NOTE.format("32,768")]


async def test_an_unknown_window_claims_nothing(fake, user, conversation):
    fake.add_model("mystery", context_length=0)  # neither /api/show nor /api/ps can tell
    fake.push_reply(Reply(content="Hm.", prompt_eval_count=99999))
    done = await answer(conversation, user, model="mystery")
    assert "context_window" not in done["stats"]
    assert done["notes"] == []
    html = await page_html(user, conversation)
    assert "answer-note" not in html
    assert gauge_of(html)["hidden"] is True


async def test_the_gauge_follows_the_last_answer_with_numbers(fake, user, conversation):
    await set_options(conversation, num_ctx=8192)
    fake.push_reply(Reply(content="One.", prompt_eval_count=3000))
    await answer(conversation, user)
    fake.push_reply(Reply(content=[" w"] * 200, delay=0.01))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Long?", "model": "llama3.2"})
    await receive_until(ws, "delta")
    await ws.send_json_to({"type": "stop"})
    assert (await receive_until(ws, "done"))[-1]["status"] == "stopped"
    await ws.disconnect()
    # The stopped answer has no numbers: the gauge keeps the one before.
    assert gauge_of(await page_html(user, conversation)) == {
        "hidden": False,
        "max": 8192,
        "value": 3001,
        "percent": "37",
    }
