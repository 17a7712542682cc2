"""Nesting and encoding at every entry point that takes text: the chat socket, rename,
the settings (a conversation's and the defaults), import and sign-up. Deep JSON, lone
surrogates, NUL and bidi override characters get a clear error (or are cleaned, for
titles), never a 500 or a closed socket.

tests/test_text_postgres.py runs this file again on PostgreSQL, which refuses NUL in
text and `\\u0000` or lone surrogates in jsonb where SQLite stores them.
"""

import json
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat import text
from chat.models import Conversation, Message
from tests.conftest import add_turns, connect, receive_until
from tests.fake_ollama import Reply
from tests.models_admin_helpers import frames_until, open_models_socket, server_frame

RLO = "\u202e"  # right-to-left override: "\u202egnp.exe" shows as "exe.png"
BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
NESTED_ARRAYS = "[" * 2000 + "]" * 2000  # 4 KB


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def nested_schema(levels: int) -> str:
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "array", "items": schema}
    return json.dumps(schema)


# --- the chat socket ------------------------------------------------------------------


async def next_frame(ws) -> dict:
    """The next frame, which must be one Daphne can send: the communicator hands text
    over as is, a real socket encodes it as UTF-8 (a lone surrogate fails there)."""
    output = await ws.receive_output(timeout=5)
    assert output["type"] == "websocket.send", f"the socket closed: {output}"
    return json.loads(output["text"].encode("utf-8"))


@database_sync_to_async
def saved_messages(conversation) -> list[tuple[str, str]]:
    return list(conversation.messages.order_by("id").values_list("role", "content"))


async def still_usable(ws, fake, conversation) -> None:
    """The socket answers a good send after the bad frame: it was never closed."""
    fake.push_reply(Reply(content="Fine."))
    await ws.send_json_to({"type": "send", "content": "ok?", "model": "llama3.2"})
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "complete"


def send_frame(content, **extra) -> str:
    return json.dumps(
        {"type": "send", "content": content, "model": "llama3.2", "client_id": "c1", **extra}
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (NESTED_ARRAYS, "nests deeper than 64 levels"),
        ("[" * 65 + "]" * 65, "nests deeper than 64 levels"),
        (send_frame("hi", extra={"a": json.loads("[" * 70 + "]" * 70)}), "nests deeper"),
        ('{"type": "send", "content": "hi", "model": "llama3.2", "n": NaN}', "NaN"),
        ('{"type": "send", "content": "hi", "model": "llama3.2", "n": 1e999}', "too large"),
        (
            '{"type": "send", "content": "hi", "model": "llama3.2", "n": ' + "9" * 5000 + "}",
            "digits",
        ),
    ],
)
async def test_a_deep_or_non_json_frame_gets_bad_frame_and_the_socket_stays_open(
    fake, user, conversation, frame, says
):
    ws = await connect(conversation.uuid, user)
    await next_frame(ws)
    await ws.send_to(text_data=frame)
    error = await next_frame(ws)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert says in error["message"]
    assert await saved_messages(conversation) == []
    await still_usable(ws, fake, conversation)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("Half an emoji: \ud83d", "lone surrogate"),
        ("\udc00", "lone surrogate"),
        ("NUL: \x00 here", "NUL character"),
    ],
)
@pytest.mark.parametrize("kind", ["send", "edit"])
async def test_a_message_with_a_lone_surrogate_or_nul_is_refused_naming_the_send(
    fake, user, conversation, content, says, kind
):
    answer = await database_sync_to_async(add_turns)(
        conversation,
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Answer", "model": "llama3.2"},
    )
    ws = await connect(conversation.uuid, user)
    await next_frame(ws)
    frame = {"type": kind, "content": content, "model": "llama3.2", "client_id": "c9"}
    if kind == "edit":
        frame["id"] = str(answer.parent.uuid)
    await ws.send_to(text_data=json.dumps(frame))  # "\ud83d" travels as a JSON escape
    error = await next_frame(ws)
    assert (error["code"], error["client_id"]) == ("invalid", "c9")
    assert says in error["message"]
    assert await saved_messages(conversation) == [("user", "First"), ("assistant", "Answer")]
    await still_usable(ws, fake, conversation)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_message_text_keeps_newlines_tabs_and_bidi_but_the_title_does_not(
    fake, user, conversation
):
    fake.push_reply(Reply(content="Noted."))
    ws = await connect(conversation.uuid, user)
    await next_frame(ws)
    content = f"Line one\n\tindented {RLO}txt.exe\u202c and עברית"
    await ws.send_to(text_data=send_frame(content))
    first = await next_frame(ws)
    assert first["message"]["content"] == content
    assert first["conversation"]["title"] == "Line one indented txt.exe and עברית"
    await receive_until(ws, "done")
    assert (await saved_messages(conversation))[0] == ("user", content)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "regenerate", "id": "zzz", "model": "llama3.2"},
        {"type": "continue", "id": "not-a-uuid"},
        {"type": "edit", "id": "\ud800", "content": "x", "model": "llama3.2"},
        {"type": "sync", "id": "z\ud800"},
        {"type": "send", "content": "hi", "model": "llama3.2", "images": ["x"]},
        {"type": "send", "content": "hi", "model": "bad\x00name"},
    ],
)
async def test_ids_that_are_not_uuids_are_refused_without_closing_the_socket(
    fake, user, conversation, frame
):
    ws = await connect(conversation.uuid, user)
    await next_frame(ws)
    await ws.send_to(text_data=json.dumps(frame))
    error = await next_frame(ws)
    assert (error["type"], error["code"]) == ("error", "invalid")
    await still_usable(ws, fake, conversation)
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("client_id", ["c\ud800", "c\x00", f"c{RLO}1", 7])
async def test_a_client_id_that_cannot_be_sent_back_is_dropped(fake, user, conversation, client_id):
    fake.push_reply(Reply(content="Hi."))
    ws = await connect(conversation.uuid, user)
    await next_frame(ws)
    await ws.send_to(text_data=send_frame("hello", client_id=client_id))
    saved = await next_frame(ws)  # would fail to encode if the id were echoed
    assert saved["type"] == "message" and saved["client_id"] == ""
    await receive_until(ws, "done")
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_models_socket_answers_any_frame_with_bad_frame_and_stays_open(fake, staff_user):
    socket = await open_models_socket(staff_user)
    await frames_until(socket, server_frame)
    for frame in (NESTED_ARRAYS, '{"type": "pull", "name": "\\ud800"}', "\ud800"):
        await socket.send_to(text_data=frame)
        [*_, error] = await frames_until(socket, lambda f: f["type"] == "error")
        assert error["code"] == "bad_frame"
    await socket.disconnect()


# --- rename ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x7f", "\x85", *BIDI_CONTROLS])
def test_rename_strips_control_and_bidi_characters(user, conversation, control):
    response = browser_for(user).post(
        f"/c/{conversation.uuid}/rename/", {"title": f"Holiday{control} gnp.exe"}
    )
    assert response.status_code == 200
    assert response.json() == {"title": "Holiday gnp.exe"}
    conversation.refresh_from_db()
    assert conversation.title == "Holiday gnp.exe"


@pytest.mark.django_db
@pytest.mark.parametrize("invisible", [RLO + "\x00\u2066 ", "\u200b\u200b", "\ufeff\u00ad\u2060"])
def test_a_title_of_only_invisible_characters_is_refused_as_empty(user, conversation, invisible):
    response = browser_for(user).post(f"/c/{conversation.uuid}/rename/", {"title": invisible})
    assert response.status_code == 400 and "can't be empty" in response.json()["error"]
    conversation.refresh_from_db()
    assert conversation.title == ""


@pytest.mark.django_db
def test_a_rename_with_bytes_that_are_not_utf8_is_no_server_error(user, conversation):
    # A lone surrogate encoded as UTF-8 (\xed\xa0\x80) is invalid UTF-8: Django reads it as
    # U+FFFD, a real character.
    response = browser_for(user).post(
        f"/c/{conversation.uuid}/rename/",
        "title=Trip%ED%A0%80s",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert "\ud800" not in conversation.title and conversation.title.startswith("Trip")


# --- search ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "finds"),
    [("sky\x00", True), ("\x00", False), (f"sky{RLO}", True), ("%ED%A0%80sky", False)],
)
def test_search_with_nul_or_broken_characters_answers_and_still_finds(user, query, finds):
    conversation = Conversation.objects.create(owner=user, model="llama3.2", title="Blue sky")
    owner = browser_for(user)
    raw = query if "%" in query else quote(query)  # "%ED%A0%80": not UTF-8
    assert owner.get(f"/search/?q={raw}").status_code == 200
    partial = owner.get(f"/search/?q={raw}&partial=1")
    assert partial.status_code == 200
    assert (str(conversation.uuid) in partial.json()["html"]) is finds


# --- settings -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["conversation", "defaults"])
@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("format_schema", nested_schema(100), "nests deeper than 64 levels"),
        ("format_schema", "[" * 5000 + "]" * 5000, "nests deeper than 64 levels"),
        ("format_schema", '{"type": "string", "pattern": "\\ud800"}', "lone surrogate"),
        ("format_schema", '{"type": "string", "\\udfff": 1}', "lone surrogate"),
        ("format_schema", '{"type": "string", "enum": ["a\\u0000"]}', "NUL character"),
        ("format_schema", '{"type": "number", "maximum": Infinity}', "Infinity"),
        ("format_schema", '{"type": "number", "maximum": 1e999}', "too large"),
        ("system_prompt", "Be nice.\x00", "Null characters"),
        ("stop", "END\n\x00", "Null characters"),
        ("keep_alive", "\u0665m", "duration"),  # Arabic-Indic five
    ],
)
def test_settings_refuse_deep_schemas_and_bad_characters_naming_the_field(
    user, conversation, page, field, value, says
):
    url = f"/c/{conversation.uuid}/settings/" if page == "conversation" else "/settings/defaults/"
    data = {"model": "llama3.2", field: value}
    if field == "format_schema":
        data["format"] = "schema"
    response = browser_for(user).post(url, data)
    assert response.status_code == 400
    assert says in " ".join(response.json()["errors"][field])
    conversation.refresh_from_db()
    assert conversation.format is None and conversation.system_prompt == ""
    assert services_defaults(user) == {}


def services_defaults(user) -> dict:
    from chat import services

    return services.user_defaults(user)


@pytest.mark.parametrize("field", ["system_prompt", "stop", "format_schema"])
def test_the_settings_form_refuses_a_lone_surrogate_whoever_fills_it(field):
    # A form post can't carry one (Django reads such bytes as U+FFFD), but the form also
    # checks the settings of imported files: it must hold on its own.
    from chat.settings_form import SettingsForm

    form = SettingsForm({"model": "llama3.2", "format": "schema", field: '"\ud800"'})
    assert not form.is_valid()
    assert "lone surrogate" in " ".join(form.errors[field])


@pytest.mark.django_db
def test_a_schema_at_the_depth_limit_is_saved_and_keeps_its_text(user, conversation):
    schema = nested_schema(text.JSON_MAX_DEPTH)
    response = browser_for(user).post(
        f"/c/{conversation.uuid}/settings/",
        {"model": "llama3.2", "format": "schema", "format_schema": schema},
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.format == json.loads(schema)


@pytest.mark.django_db
def test_multi_line_settings_keep_bidi_marks_and_tabs(user, conversation):
    prompt = f"Answer in Hebrew.\n\t{RLO}עברית\u202c"
    response = browser_for(user).post(
        f"/c/{conversation.uuid}/settings/",
        {"model": "llama3.2", "system_prompt": prompt, "stop": "<|end|>\n\u2067x"},
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.system_prompt == prompt
    assert conversation.options["stop"] == ["<|end|>", "\u2067x"]


# --- import ---------------------------------------------------------------------------


def import_file(client, raw: str | bytes):
    data = raw.encode() if isinstance(raw, str) else raw
    return client.post(
        "/import/", {"file": SimpleUploadedFile("export.json", data, "application/json")}
    )


def export_with(title='"Imported"', extra="") -> str:
    """A file written as JSON text, so that it can hold escapes json.dumps would not."""
    return (
        '{"format": "ollama-chat", "version": 1, "conversations": [{'
        f'"title": {title}, "model": "llama3.2"{extra}, "messages": ['
        '{"id": "q", "role": "user", "content": "Hi"}]}]}'
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (export_with(title='"Trip \\ud800"'), "lone surrogate (such as \\ud800"),
        (export_with(title='"\\udc00"'), "at conversations[0].title"),
        (export_with(title='"Trip \\u0000"'), "NUL character"),
        (export_with(extra=', "system_prompt": "\\ud83d"'), "conversations[0].system_prompt"),
        (export_with(extra=', "\\ud800": 1'), "lone surrogate"),
        (export_with(extra=', "options": {"stop": ["\\u0000"]}'), "NUL character"),
        (export_with(extra=', "options": {"temperature": NaN}'), "NaN"),
        (export_with(extra=f', "format": {nested_schema(100)}'), "nests too deeply"),
        (export_with(extra=f', "format": {nested_schema(65)}'), "at most 64 levels"),
        ("[" * 3000 + "]" * 3000, "nests too deeply"),
    ],
)
def test_an_import_with_bad_characters_or_deep_nesting_is_refused_and_creates_nothing(
    user, raw, says
):
    response = import_file(browser_for(user), raw)
    assert response.status_code == 400
    assert says in response.content.decode().replace("&quot;", '"')
    assert not Conversation.objects.exists() and not Message.objects.exists()


@pytest.mark.django_db
def test_a_schema_at_the_depth_limit_survives_export_and_import(user, conversation):
    owner = browser_for(user)
    schema = nested_schema(text.JSON_MAX_DEPTH)
    owner.post(
        f"/c/{conversation.uuid}/settings/",
        {"model": "llama3.2", "format": "schema", "format_schema": schema},
    )
    exported = b"".join(owner.get("/export/all.json").streaming_content)
    owner.post(f"/c/{conversation.uuid}/delete/")
    assert import_file(owner, exported).status_code == 302
    assert Conversation.objects.get().format == json.loads(schema)


@pytest.mark.django_db
def test_an_imported_title_loses_its_control_and_bidi_characters(user):
    title = json.dumps(f"Photos{RLO}\u2066 gnp.exe\t\x1b")
    response = import_file(browser_for(user), export_with(title=title))
    assert response.status_code == 302
    assert Conversation.objects.get().title == "Photos gnp.exe"


# --- sign-up --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "username",
    ["bob\x00", f"bob{RLO}", "\u2066bob", "bob%ED%A0%80"],
)
def test_sign_up_refuses_a_username_with_nul_bidi_or_broken_characters(
    client, staff_user, settings, username
):
    settings.SIGNUP_MODE = "open"
    name = username if "%" in username else quote(username)  # "%ED%A0%80": not UTF-8
    body = f"username={name}&password1=a-long-password-9&password2=a-long-password-9"
    response = client.post("/signup/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert not User.objects.filter(username__startswith="bob").exists()
    assert not User.objects.filter(username__contains="\ufffd").exists()
