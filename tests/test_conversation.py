"""The conversation page's features: alternates, continue, settings, images, and what
Ollama receives for each (asserted on the requests the test double recorded)."""

import base64
import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import services
from chat.models import Attachment, Conversation, Message
from chat.views.conversation import WINDOW
from tests.conftest import add_turns, connect, receive, receive_until, text_of
from tests.fake_ollama import Reply

# A 1x1 transparent PNG as Pillow writes it: uploads are re-encoded (chat/images.py), and
# this one comes out byte for byte the same, so tests can compare what is stored and sent.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR4nGNgYAAAAAMAAbitOmMAAAAASUVORK5CYII="
)


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def ask(ws, content, model="llama3.2", **extra):
    await ws.send_json_to({"type": "send", "content": content, "model": model, **extra})
    return await receive_until(ws, "done")


@database_sync_to_async
def visible(conversation):
    conversation.refresh_from_db()
    return [(m.role, m.content) for m in services.branch(conversation)]


# --- alternates -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_regenerate_keeps_the_old_answer_as_an_alternate(fake, user, conversation):
    fake.push_reply(Reply(content="First answer."))
    fake.push_reply(Reply(content="Second answer."))
    fake.push_reply(Reply(content="Follow-up answer."))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    first = await ask(ws, "Question?")
    old_id = first[-1]["id"]

    await ws.send_json_to({"type": "regenerate", "id": old_id, "model": "llama3.2"})
    frames = await receive_until(ws, "done")
    start = next(f for f in frames if f["type"] == "start")
    assert start["message"]["id"] != old_id
    assert start["message"]["alternates"]["index"] == 2
    assert start["message"]["alternates"]["count"] == 2
    assert start["message"]["alternates"]["previous"] == old_id
    assert text_of(frames) == "Second answer."
    # The same question was asked again, without the first answer.
    assert fake.last_chat()["messages"] == [{"role": "user", "content": "Question?"}]
    assert await visible(conversation) == [("user", "Question?"), ("assistant", "Second answer.")]

    # Switching back shows the first answer, and the next question follows that branch.
    response = await database_sync_to_async(
        lambda: browser_for(user).post(f"/c/{conversation.uuid}/alternates/{old_id}/")
    )()
    assert response.status_code == 200
    assert "First answer." in response.json()["html"]
    assert "Second answer." not in response.json()["html"]
    assert "1/2" in response.json()["html"]
    await ask(ws, "And then?")
    assert fake.last_chat()["messages"] == [
        {"role": "user", "content": "Question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "And then?"},
    ]
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_edit_and_resend_branches_from_the_edited_question(fake, user, conversation):
    for text in ("A1", "A2", "A1 again"):
        fake.push_reply(Reply(content=text))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    first = await ask(ws, "Q1")
    await ask(ws, "Q2")
    question_id = first[0]["message"]["id"]

    await ws.send_json_to(
        {
            "type": "edit",
            "id": question_id,
            "content": "Q1 edited",
            "model": "llama3.2",
            "client_id": "e1",
        }
    )
    frames = await receive_until(ws, "done")
    message = frames[0]
    assert message["type"] == "message" and message["client_id"] == "e1"
    assert message["message"]["content"] == "Q1 edited"
    assert message["message"]["parent"] is None
    assert message["message"]["alternates"] == {
        "index": 2,
        "count": 2,
        "previous": question_id,
        "next": None,
    }
    assert fake.last_chat()["messages"] == [{"role": "user", "content": "Q1 edited"}]
    assert await visible(conversation) == [("user", "Q1 edited"), ("assistant", "A1 again")]
    # Nothing was lost: the original question and both of its answers are still there.
    assert await database_sync_to_async(conversation.messages.count)() == 6
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_stranger_cannot_regenerate_edit_continue_or_switch(
    fake, user, other_user, conversation
):
    answer = await database_sync_to_async(add_turns)(
        conversation,
        {"role": "user", "content": "Mine"},
        {"role": "assistant", "content": "Secret", "status": "stopped"},
    )
    own = await database_sync_to_async(Conversation.objects.create)(owner=other_user, model="x")
    ws = await connect(own.uuid, other_user)
    await receive(ws)
    for frame in (
        {"type": "regenerate", "id": str(answer.uuid), "model": "llama3.2"},
        {"type": "continue", "id": str(answer.uuid)},
        {"type": "edit", "id": str(answer.parent.uuid), "content": "x", "model": "llama3.2"},
    ):
        await ws.send_json_to(frame)
        assert (await ws.receive_output(timeout=2))["code"] == 4404
        ws = await connect(own.uuid, other_user)
        await receive(ws)
    assert fake.chat_requests() == []
    response = await database_sync_to_async(
        lambda: browser_for(other_user).post(f"/c/{conversation.uuid}/alternates/{answer.uuid}/")
    )()
    assert response.status_code == 404
    await ws.disconnect()


# --- continue -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_continue_picks_up_a_stopped_answer_where_it_ends(fake, user, conversation):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(100)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Count", "model": "llama3.2"})
    await receive_until(ws, "delta")
    await ws.send_json_to({"type": "stop"})
    stopped = (await receive_until(ws, "done"))[-1]
    assert stopped["status"] == "stopped"
    partial = (await database_sync_to_async(Message.objects.get)(uuid=stopped["id"])).content

    fake.push_reply(Reply(content=" and the rest."))
    await ws.send_json_to({"type": "continue", "id": stopped["id"]})
    frames = await receive_until(ws, "done")
    start = next(f for f in frames if f["type"] == "start")
    assert start["message"]["id"] == stopped["id"]
    assert start["message"]["content"] == partial
    assert frames[-1]["status"] == "complete"
    assert text_of([{"type": "snapshot", "message": start["message"]}, *frames]) == (
        partial + " and the rest."
    )
    assert fake.last_chat()["messages"] == [
        {"role": "user", "content": "Count"},
        {"role": "assistant", "content": partial},
    ]
    saved = await database_sync_to_async(Message.objects.get)(uuid=stopped["id"])
    assert (saved.status, saved.content) == ("complete", partial + " and the rest.")
    # A complete answer does not continue.
    await ws.send_json_to({"type": "continue", "id": stopped["id"]})
    assert (await receive(ws))["code"] == "invalid"
    await ws.disconnect()


# --- settings -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_settings_are_sent_with_the_next_request(fake, user, conversation):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    response = await database_sync_to_async(
        lambda: browser_for(user).post(
            f"/c/{conversation.uuid}/settings/",
            {
                "model": "qwen3",
                "system_prompt": "Be brief.",
                "temperature": "0.2",
                "top_p": "0.9",
                "top_k": "40",
                "seed": "42",
                "num_ctx": "8192",
                "num_predict": "256",
                "repeat_penalty": "1.1",
                "stop": "END\n###",
                "keep_alive": "-1",
                "think": "false",
                "format": "schema",
                "format_schema": json.dumps(schema),
            },
        )
    )()
    assert response.status_code == 200, response.content
    assert response.json()["settings"]["temperature"] == 0.2
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ask(ws, "How old?", model="qwen3")
    body = fake.last_chat()
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "seed": 42,
        "num_ctx": 8192,
        "num_predict": 256,
        "repeat_penalty": 1.1,
        "stop": ["END", "###"],
    }
    assert body["keep_alive"] == -1  # a number: Ollama refuses unit-less strings
    assert body["think"] is False
    assert body["format"] == schema
    await ws.disconnect()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", "70", "less than or equal to 5"),
        ("top_p", "1.5", "less than or equal to 1"),
        ("num_ctx", "12", "greater than or equal to 128"),
        ("keep_alive", "soon", "duration"),
        ("think", "very", "valid choice"),
        ("model", "bad name!", "valid Ollama model name"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(
    user, conversation, field, value, words
):
    data = {"model": "llama3.2", field: value}
    response = browser_for(user).post(f"/c/{conversation.uuid}/settings/", data)
    assert response.status_code == 400
    assert words in " ".join(response.json()["errors"][field])
    conversation.refresh_from_db()
    assert conversation.options == {} and conversation.model == "llama3.2"


@pytest.mark.django_db
def test_an_invalid_json_schema_is_refused(user, conversation):
    client = browser_for(user)
    for text, words in (
        ("{not json", "not valid JSON"),
        ('{"type": 12}', "not a valid JSON schema"),
    ):
        response = client.post(
            f"/c/{conversation.uuid}/settings/",
            {"model": "llama3.2", "format": "schema", "format_schema": text},
        )
        assert response.status_code == 400
        assert words in response.json()["errors"]["format_schema"][0]


@pytest.mark.django_db
def test_settings_are_owner_only(client, user, other_user, conversation):
    assert client.get(f"/c/{conversation.uuid}/settings/").status_code == 302
    stranger = browser_for(other_user)
    assert stranger.get(f"/c/{conversation.uuid}/settings/").status_code == 404
    response = stranger.post(f"/c/{conversation.uuid}/settings/", {"model": "evil"})
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.model == "llama3.2"


@pytest.mark.django_db
def test_user_defaults_apply_to_new_conversations(user):
    client = browser_for(user)
    assert client.get("/settings/defaults/").status_code == 200
    response = client.post(
        "/settings/defaults/",
        {"model": "qwen3", "system_prompt": "Be kind.", "temperature": "0.5", "think": "true"},
    )
    assert response.status_code == 200
    created = client.post("/c/new/", {"model": "qwen3"}).json()
    conversation = Conversation.objects.get(uuid=created["id"])
    assert conversation.system_prompt == "Be kind."
    assert conversation.options == {"temperature": 0.5}
    assert conversation.think == "true"
    page = client.get("/")
    assert page.context["page_data"]["model"] == "qwen3"


# --- images ---------------------------------------------------------------------------


def upload(client, conversation, data=PNG, name="dot.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/c/{conversation.uuid}/attachments/",
        {"image": SimpleUploadedFile(name, data, content_type="image/png")},
    )


@pytest.mark.django_db
def test_images_are_checked_stored_and_served_to_the_owner_only(
    user, other_user, conversation, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    owner = browser_for(user)
    response = upload(owner, conversation)
    assert response.status_code == 201
    url = response.json()["url"]
    served = owner.get(url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == PNG
    assert browser_for(other_user).get(url).status_code == 404
    assert Client().get(url).status_code == 302
    assert upload(browser_for(other_user), conversation).status_code == 404

    refused = upload(owner, conversation, data=b"<svg onload=alert(1)>", name="x.png")
    assert refused.status_code == 400 and "PNG, JPEG" in refused.json()["error"]
    settings.MAX_IMAGE_BYTES = 10
    too_big = upload(owner, conversation)
    assert too_big.status_code == 413 and "too large" in too_big.json()["error"]
    assert Attachment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
async def test_an_image_goes_to_a_vision_model_as_base64(
    fake, user, conversation, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    response = await database_sync_to_async(lambda: upload(browser_for(user), conversation))()
    image_id = response.json()["id"]
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    frames = await ask(ws, "What is this?", model="llava", images=[image_id])
    assert frames[0]["message"]["images"] == [image_id]
    assert fake.last_chat()["messages"] == [
        {"role": "user", "content": "What is this?", "images": [base64.b64encode(PNG).decode()]}
    ]
    # The next turn sends the image again with the history.
    await ask(ws, "And now?", model="llava")
    assert fake.last_chat()["messages"][0]["images"] == [base64.b64encode(PNG).decode()]
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_model_without_vision_says_so_and_nothing_is_sent(
    fake, user, conversation, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    response = await database_sync_to_async(lambda: upload(browser_for(user), conversation))()
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to(
        {
            "type": "send",
            "content": "See?",
            "model": "llama3.2",
            "client_id": "i1",
            "images": [response.json()["id"]],
        }
    )
    error = await receive(ws)
    assert error["code"] == "no_vision" and error["client_id"] == "i1"
    assert "can't see images" in error["message"]
    assert fake.chat_requests() == []
    assert await database_sync_to_async(conversation.messages.count)() == 0
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_another_conversations_image_cannot_be_sent(
    fake, user, other_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    theirs = await database_sync_to_async(Conversation.objects.create)(
        owner=other_user, model="llava"
    )
    response = await database_sync_to_async(lambda: upload(browser_for(other_user), theirs))()
    mine = await database_sync_to_async(Conversation.objects.create)(owner=user, model="llava")
    ws = await connect(mine.uuid, user)
    await receive(ws)
    await ws.send_json_to(
        {"type": "send", "content": "Steal", "model": "llava", "images": [response.json()["id"]]}
    )
    assert (await receive(ws))["code"] == "invalid"
    assert fake.chat_requests() == []
    await ws.disconnect()


@pytest.mark.django_db
def test_model_capabilities_come_from_show(client, user, fake):
    assert client.get("/api/models/llava/").status_code == 401
    client.force_login(user)
    assert "vision" in client.get("/api/models/llava/").json()["capabilities"]
    assert client.get("/api/models/ghost/").status_code == 404
    assert "vision" not in client.get("/api/models/llama3.2/").json()["capabilities"]


# --- page speed -----------------------------------------------------------------------


def _long_conversation(user, turns: int) -> Conversation:
    conversation = Conversation.objects.create(owner=user, model="llama3.2")
    # Explicit ids so the whole chain of parents goes in one INSERT.
    first = (Message.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    Message.objects.bulk_create(
        Message(
            id=first + index,
            conversation=conversation,
            parent_id=first + index - 1 if index else None,
            role="user" if index % 2 == 0 else "assistant",
            content=f"message {index}",
            stats={"eval_count": 5, "eval_duration": 10**8},
        )
        for index in range(turns)
    )
    conversation.current_leaf_id = first + turns - 1
    conversation.save()
    return conversation


@pytest.mark.django_db
def test_opening_a_conversation_takes_the_same_queries_for_10_or_1000_messages(
    user, django_assert_num_queries
):
    client = browser_for(user)
    small, large = _long_conversation(user, 10), _long_conversation(user, 1000)
    client.get(f"/c/{small.uuid}/")  # warm the session and the template cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert client.get(f"/c/{small.uuid}/").status_code == 200
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(f"/c/{large.uuid}/")
    # The last WINDOW messages; the rest on demand.
    assert response.content.count(b"<article") == WINDOW
    assert b"message 999" in response.content
    assert b"message 849" not in response.content
    assert b'data-testid="show-earlier"' in response.content


@pytest.mark.django_db
def test_earlier_messages_load_on_demand_and_a_search_hit_opens_rendered(user, other_user):
    client = browser_for(user)
    conversation = _long_conversation(user, 400)
    branch = list(Message.objects.filter(conversation=conversation).order_by("id"))
    first_shown = branch[-WINDOW]
    earlier = client.get(f"/c/{conversation.uuid}/messages/?before={first_shown.uuid}").json()
    assert earlier["html"].count("<article") == WINDOW
    assert "message 249" in earlier["html"] and "message 250" not in earlier["html"]
    assert f'data-before="{branch[-2 * WINDOW].uuid}"' in earlier["html"]
    oldest = client.get(f"/c/{conversation.uuid}/messages/?before={branch[-2 * WINDOW].uuid}")
    assert oldest.json()["html"].count("<article") == 400 - 2 * WINDOW
    assert "show-earlier" not in oldest.json()["html"]
    # A search hit far back opens with it on the page.
    page = client.get(f"/c/{conversation.uuid}/?around={branch[10].uuid}")
    assert f'id="m-{branch[10].uuid}"'.encode() in page.content
    # Strangers get nothing.
    stranger = browser_for(other_user)
    assert (
        stranger.get(f"/c/{conversation.uuid}/messages/?before={first_shown.uuid}").status_code
        == 404
    )


@pytest.mark.django_db
def test_starting_an_answer_takes_the_same_queries_for_10_or_1000_messages(user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for turns in (10, 1000):
        conversation = _long_conversation(user, turns)
        with CaptureQueriesContext(connection) as queries:
            started = services.start_answer(
                user, conversation.uuid, "One more?", "llama3.2", task_channel=f"t{turns}"
            )
        counts.append(len(queries.captured_queries))
        assert len(started.history) == turns + 1
        Message.objects.filter(id=started.answer.id).update(status="complete")
    assert counts[0] == counts[1]
