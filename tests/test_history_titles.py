"""Automatic titles: after the first answer the conversation's model names it in the
background, every open tab hears the `title` frame, and a rename by the user wins."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat import services, titles
from chat.models import Conversation
from tests.conftest import connect, receive, receive_until
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def auto_titles(settings):
    settings.AUTO_TITLES = True


@database_sync_to_async
def reload(conversation):
    conversation.refresh_from_db()
    return conversation


async def settle():
    """Let the background title tasks of this test finish."""
    await asyncio.gather(*titles._tasks, return_exceptions=True)


async def ask(ws, content="Why is the sky blue?"):
    await ws.send_json_to(
        {"type": "send", "content": content, "model": "llama3.2", "client_id": "c1"}
    )
    return await receive_until(ws, "done")


@pytest.mark.parametrize(
    ("reply", "title"),
    [
        ("Why the Sky Is Blue", "Why the Sky Is Blue"),
        ('"Why the Sky Is Blue."', "Why the Sky Is Blue"),
        ("**Title:** “Blue skies explained”!\nHope that helps.", "Blue skies explained"),
        ("# Rayleigh scattering", "Rayleigh scattering"),
        ("<think>Hmm, a title.</think>\n\nSky colour", "Sky colour"),
        # The template opened the block: only the closing tag is in the reply.
        ("Okay, the user asks something.\n</think>\n\nSky colour", "Sky colour"),
        ("Okay, a title </think>Sky colour", "Sky colour"),
        ("<think>Never finished", ""),
        ("Title: 'Sunsets'", "Sunsets"),
        ("   \n  ", ""),
        ("word " * 30, ("word " * 12).strip()),
    ],
)
def test_the_models_reply_is_cleaned_into_a_short_title(reply, title):
    assert titles.clean_title(reply) == title
    assert len(titles.clean_title(reply)) <= titles.TITLE_CHARS


async def test_the_first_answer_names_the_conversation_for_every_tab(
    fake, auto_titles, user, conversation
):
    fake.push_reply(Reply(content="Rayleigh scattering makes it blue."))
    fake.push_reply(Reply(content='Title: "Why the sky is blue."'))
    ws = await connect(conversation.uuid, user)
    other_tab = await connect(conversation.uuid, user)
    await receive(ws)
    await receive(other_tab)

    frames = await ask(ws)
    assert frames[0]["conversation"]["title"] == "Why is the sky blue?"  # from the message
    assert frames[-1]["status"] == "complete"
    for tab in (ws, other_tab):
        named = await receive_until(tab, "title")
        assert named[-1] == {"type": "title", "title": "Why the sky is blue"}

    saved = await reload(conversation)
    assert (saved.title, saved.title_source) == ("Why the sky is blue", "model")
    request = fake.last_chat()
    assert request["stream"] is False and request["think"] is False
    assert request["model"] == "llama3.2"
    prompt = request["messages"][-1]["content"]
    assert "Why is the sky blue?" in prompt and "Rayleigh scattering" in prompt
    await ws.disconnect()
    await other_tab.disconnect()


async def test_a_rename_while_the_model_thinks_wins(fake, auto_titles, user, conversation):
    fake.push_reply(Reply(content="Blue light scatters."))
    fake.push_reply(Reply(content="A model title", first_delay=0.5))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ask(ws)
    while fake.chat_requests()[-1].get("stream") is not False:
        await asyncio.sleep(0.02)  # the title request has been sent
    await database_sync_to_async(services.rename_conversation)(user, conversation.uuid, "Mine")
    assert (await receive_until(ws, "title"))[-1]["title"] == "Mine"
    await settle()
    assert await ws.receive_nothing(timeout=0.2)
    saved = await reload(conversation)
    assert (saved.title, saved.title_source) == ("Mine", "user")
    await ws.disconnect()


async def test_a_failed_title_request_keeps_the_title_from_the_message(
    fake, auto_titles, user, conversation
):
    fake.push_reply(Reply(content="Blue light scatters."))
    fake.push_reply(Reply(status=500, error="model runner has unexpectedly stopped"))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    frames = await ask(ws)
    assert frames[-1]["status"] == "complete"  # the answer never waited for the title
    await settle()
    assert len(fake.chat_requests()) == 2
    assert await ws.receive_nothing(timeout=0.2)
    saved = await reload(conversation)
    assert (saved.title, saved.title_source) == ("Why is the sky blue?", "message")
    await ws.disconnect()


async def test_only_the_first_exchange_asks_for_a_title(fake, auto_titles, user, conversation):
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(
        title="Already named", title_source="user"
    )
    fake.push_reply(Reply(content="One."))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ask(ws, "First")
    await settle()
    fake.push_reply(Reply(content="Two."))
    await ask(ws, "Second")
    await settle()
    assert [body.get("stream") for body in fake.chat_requests()] == [True, True]
    assert (await reload(conversation)).title == "Already named"
    await ws.disconnect()


async def test_a_rename_reaches_the_owners_tabs_and_never_a_stranger(
    user, other_user, conversation
):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    stranger = await connect(conversation.uuid, other_user)
    assert (await stranger.receive_output(timeout=2))["code"] == 4404
    await database_sync_to_async(services.rename_conversation)(user, conversation.uuid, "Plans")
    assert (await receive_until(ws, "title"))[-1] == {"type": "title", "title": "Plans"}
    await ws.disconnect()
