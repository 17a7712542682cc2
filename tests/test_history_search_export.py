"""Search, export and import with the three personas: a stranger's search and export URLs
never return the owner's data, and a malformed or hostile file creates nothing."""

import json

import pytest
from django.test import Client

from chat.models import Conversation, Message
from tests.conftest import add_turns

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def stranger(other_user):
    client = Client()
    client.force_login(other_user)
    return client


@pytest.fixture
def sky(user):
    """A conversation with an alternate answer: the first one is off the branch on screen."""
    conversation = Conversation.objects.create(owner=user, model="llama3.2", title="Sky colours")
    question = add_turns(conversation, {"role": "user", "content": "Why is the sky blue?"})
    old = conversation.messages.create(
        parent=question, role="assistant", content="Old answer about Rayleigh scattering."
    )
    add_turns(
        conversation,
        {
            "role": "assistant",
            "content": "Because of Rayleigh scattering, <b>mostly</b>.",
            "thinking": "Physics.",
            "model": "llama3.2",
            "stats": {"eval_count": 9, "eval_duration": 300_000_000, "done_reason": "stop"},
        },
        {"role": "user", "content": "And at sunset?"},
    )
    conversation.old_answer = old
    return conversation


def exported(response) -> dict:
    """A JSON export as the browser saves it (exports are streamed)."""
    assert response.status_code == 200
    return json.loads(b"".join(response.streaming_content))


def search(client, query: str, **extra) -> str:
    response = client.get("/search/", {"q": query, **extra})
    assert response.status_code == 200
    return response.json()["html"] if extra.get("partial") else response.content.decode()


# --- search ----------------------------------------------------------------------------


def test_search_finds_titles_and_messages_with_the_matches_highlighted(owner, sky):
    html = search(owner, "rayleigh")
    assert "<mark>Rayleigh</mark> scattering" in html
    assert html.count('data-testid="search-hit"') == 3  # the conversation + two answers
    assert f"/c/{sky.uuid}/m/" in html
    assert "<mark>Sky</mark> colours" in search(owner, "SKY", partial="1")


def test_search_escapes_the_text_around_and_inside_a_match(owner, user):
    conversation = Conversation.objects.create(owner=user, model="llama3.2", title="<i>x</i>")
    add_turns(conversation, {"role": "user", "content": 'Try <script>alert("<b>")</script> now'})
    html = search(owner, "<b>")
    assert '<script>alert("' not in html
    assert "&lt;script&gt;alert(&quot;<mark>&lt;b&gt;</mark>&quot;)" in html
    assert "<i>x</i>" not in html


def test_search_cuts_a_snippet_around_a_match_deep_in_a_long_answer(owner, user):
    conversation = Conversation.objects.create(owner=user, model="llama3.2")
    add_turns(conversation, {"role": "assistant", "content": "a " * 5000 + "needle" + " b" * 5000})
    html = search(owner, "needle", partial="1")
    assert "…" in html and "<mark>needle</mark>" in html
    assert len(html) < 2000


def test_a_stranger_never_finds_the_owners_conversations(stranger, sky):
    for query in ("sky", "Rayleigh", "sunset", "a"):
        for html in (search(stranger, query), search(stranger, query, partial="1")):
            assert str(sky.uuid) not in html
            assert "scattering" not in html and "colours" not in html
            assert "search-hit" not in html


def test_search_needs_a_login(client, sky):
    response = client.get("/search/", {"q": "sky"})
    assert response.status_code == 302 and b"sky" not in response.content.lower()


def test_a_hit_opens_the_conversation_at_the_message_on_its_branch(owner, sky):
    old = sky.old_answer
    response = owner.get(f"/c/{sky.uuid}/m/{old.uuid}/")
    assert response.status_code == 302
    assert response["Location"] == f"/c/{sky.uuid}/?around={old.uuid}#m-{old.uuid}"
    page = owner.get(f"/c/{sky.uuid}/").content.decode()
    assert f'id="m-{old.uuid}"' in page  # the alternate holding the hit is now on screen
    assert "And at sunset?" not in page


def test_a_hit_on_screen_leaves_the_branch_alone(owner, sky):
    leaf = sky.current_leaf
    sunset = sky.messages.get(content="And at sunset?")
    owner.get(f"/c/{sky.uuid}/m/{sky.messages.get(content='Why is the sky blue?').uuid}/")
    sky.refresh_from_db()
    assert sky.current_leaf == leaf == sunset


def test_a_stranger_or_anonymous_cannot_open_a_hit(client, stranger, sky):
    url = f"/c/{sky.uuid}/m/{sky.old_answer.uuid}/"
    assert stranger.get(url).status_code == 404
    assert client.get(url).status_code == 302
    sky.refresh_from_db()
    assert sky.current_leaf.content == "And at sunset?"  # nothing switched


def test_search_treats_like_wildcards_as_text(owner, user):
    conversation = Conversation.objects.create(owner=user, model="llama3.2")
    add_turns(conversation, {"role": "user", "content": "It is 100% done"})
    add_turns(conversation, {"role": "user", "content": "It is 1000 done"})
    html = search(owner, "100%")
    assert html.count('class="search-snippet"') == 1 and "<mark>100%</mark>" in html
    assert "search-hit" not in search(owner, "_")


# --- export ----------------------------------------------------------------------------


def test_markdown_export_is_the_branch_on_screen(owner, sky):
    response = owner.get(f"/c/{sky.uuid}/export.md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="sky-colours.md"'
    text = response.content.decode()
    assert text.startswith("# Sky colours\n")
    assert "## You\n\nWhy is the sky blue?" in text
    assert "## llama3.2\n\n> **Thinking**\n>\n> Physics.\n\nBecause of Rayleigh" in text
    assert "Old answer" not in text


def test_json_export_holds_every_message_with_its_parent(owner, sky):
    response = owner.get(f"/c/{sky.uuid}/export.json")
    assert response["Content-Disposition"] == 'attachment; filename="sky-colours.json"'
    data = exported(response)
    assert (data["format"], data["version"]) == ("ollama-chat", 1)
    [conversation] = data["conversations"]
    assert conversation["title"] == "Sky colours" and conversation["model"] == "llama3.2"
    messages = {m["content"]: m for m in conversation["messages"]}
    question = messages["Why is the sky blue?"]
    assert question["parent"] is None
    assert messages["Old answer about Rayleigh scattering."]["parent"] == question["id"]
    assert conversation["current_leaf"] == messages["And at sunset?"]["id"]
    assert messages["Because of Rayleigh scattering, <b>mostly</b>."]["stats"]["eval_count"] == 9


def test_export_all_holds_only_the_users_conversations(owner, stranger, sky, other_user):
    Conversation.objects.create(owner=other_user, model="llama3.2", title="Mallory's plan")
    Conversation.objects.filter(pk=sky.pk).update(archived=True)
    response = owner.get("/export/all.json")
    assert response["Content-Disposition"].startswith('attachment; filename="ollama-chat-')
    titles = [c["title"] for c in exported(response)["conversations"]]
    assert titles == ["Sky colours"]
    theirs = exported(stranger.get("/export/all.json"))["conversations"]
    assert [c["title"] for c in theirs] == ["Mallory's plan"]


def test_export_all_takes_a_fixed_number_of_queries(owner, user, django_assert_num_queries):
    for n in range(30):
        conversation = Conversation.objects.create(owner=user, model="llama3.2", title=f"C{n}")
        add_turns(
            conversation, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
        )
    # session, user, approval (chat.access), conversations, messages, images
    with django_assert_num_queries(6):
        data = exported(owner.get("/export/all.json"))
    assert len(data["conversations"]) == 30


@pytest.mark.parametrize("suffix", ["export.md", "export.json"])
def test_a_stranger_or_anonymous_gets_no_export(client, stranger, sky, suffix):
    response = stranger.get(f"/c/{sky.uuid}/{suffix}")
    assert response.status_code == 404 and b"Rayleigh" not in response.content
    response = client.get(f"/c/{sky.uuid}/{suffix}")
    assert response.status_code == 302 and b"Rayleigh" not in response.content
    assert client.get("/export/all.json").status_code == 302


# --- import ----------------------------------------------------------------------------


def upload(client, data, name="export.json"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post("/import/", {"file": SimpleUploadedFile(name, raw, "application/json")})


def test_an_export_imports_back_as_new_conversations_with_the_same_tree(owner, user, sky):
    data = exported(owner.get("/export/all.json"))
    original = {m.content: m for m in sky.messages.select_related("parent")}
    sky_uuid, sky_updated = sky.uuid, sky.updated
    assert owner.post(f"/c/{sky.uuid}/delete/").status_code == 200
    response = upload(owner, data)
    assert response.status_code == 302 and response["Location"] == "/"
    copy = Conversation.objects.get()
    assert copy.owner == user and copy.uuid != sky_uuid
    assert (copy.title, copy.model, copy.title_source) == ("Sky colours", "llama3.2", "message")
    assert copy.updated == sky_updated
    copied = {m.content: m for m in copy.messages.all()}
    assert set(copied) == set(original)
    for content, message in copied.items():
        parent = original[content].parent
        assert (message.parent.content if message.parent else None) == (
            parent.content if parent else None
        )
        assert message.uuid != original[content].uuid
    assert copy.current_leaf.content == "And at sunset?"
    assert "Imported 1 conversation." in owner.get("/").content.decode()


def valid_file(**conversation) -> dict:
    return {
        "format": "ollama-chat",
        "version": 1,
        "conversations": [
            {
                "title": "Imported",
                "model": "llama3.2",
                "messages": [
                    {"id": "q", "parent": None, "role": "user", "content": "Hi"},
                    {"id": "a", "parent": "q", "role": "assistant", "content": "Hello"},
                ],
                **conversation,
            }
        ],
    }


def test_the_file_cannot_choose_ids_owners_or_paths(owner, user, other_user, sky):
    theirs = Conversation.objects.create(owner=other_user, model="llama3.2", title="Theirs")
    hostile = valid_file(
        id=str(theirs.uuid),
        uuid=str(sky.uuid),
        owner=other_user.pk,
        owner_id=other_user.pk,
    )
    hostile["conversations"][0]["messages"][0].update(
        {
            "uuid": str(sky.current_leaf.uuid),
            "conversation": sky.pk,
            "images": [{"file": "../../etc/passwd"}],
        }
    )
    assert upload(owner, hostile).status_code == 302
    created = Conversation.objects.get(title="Imported")
    assert created.owner == user and created.uuid not in (sky.uuid, theirs.uuid)
    assert not created.attachments.exists()
    assert Message.objects.filter(uuid=sky.current_leaf.uuid).count() == 1
    assert list(Conversation.objects.filter(owner=other_user)) == [theirs]


def test_a_streaming_answer_imports_as_interrupted(owner):
    data = valid_file()
    data["conversations"][0]["messages"][1]["status"] = "streaming"
    upload(owner, data)
    answer = Message.objects.get(content="Hello")
    assert answer.status == "interrupted" and answer.error


def _bad(**changes):
    data = valid_file()
    for path, value in changes.items():
        target = data
        *parents, key = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        ({"conversations": []}, "not an Ollama Chat export"),
        (_bad(version=2), "version 2 is not supported"),
        (_bad(conversations=[]), "no conversations"),
        (_bad(**{"conversations.0.model": "bad model!"}), "not a valid Ollama model name"),
        (_bad(**{"conversations.0.messages.0.role": "robot"}), "role must be one of"),
        (_bad(**{"conversations.0.messages.1.content": 7}), "content must be text"),
        (_bad(**{"conversations.0.messages.0.content": "x" * 32_001}), "longer than 32,000"),
        (_bad(**{"conversations.0.messages.1.parent": "nowhere"}), "is not a message of this"),
        (_bad(**{"conversations.0.messages.0.parent": "a"}), "go round in a circle"),
        (_bad(**{"conversations.0.messages.1.id": "q"}), "used twice"),
        (_bad(**{"conversations.0.current_leaf": "zzz"}), "is not one of its messages"),
        (_bad(**{"conversations.0.pinned": "yes"}), "pinned must be true or false"),
        (_bad(**{"conversations.0.updated": "last tuesday"}), "updated must be a date"),
        (_bad(**{"conversations.0.options": {"temperature": 70}}), "temperature"),
        (_bad(**{"conversations.0.messages.1.stats": {"eval_count": "many"}}), "whole number"),
    ],
)
def test_a_malformed_or_hostile_file_is_refused_and_creates_nothing(owner, data, says):
    response = upload(owner, data)
    assert response.status_code == 400
    assert says in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_a_parent_in_another_conversation_is_refused(owner):
    data = valid_file()
    other = json.loads(json.dumps(data["conversations"][0]))
    other["messages"] = [{"id": "x", "parent": "q", "role": "user", "content": "Sneaky"}]
    data["conversations"].append(other)
    response = upload(owner, data)
    assert response.status_code == 400 and "Conversation 2" in response.content.decode()
    assert not Conversation.objects.exists()


def test_a_file_over_the_size_limit_is_refused(owner, settings):
    settings.MAX_IMPORT_BYTES = 1024
    response = upload(owner, valid_file(system_prompt="x" * 2000))
    assert response.status_code == 400 and "too large" in response.content.decode()
    assert not Conversation.objects.exists()


def test_import_is_for_logged_in_users_only(client):
    assert upload(client, valid_file()).status_code == 302
    assert client.get("/import/").status_code == 302
    assert not Conversation.objects.exists()


def test_import_queries_grow_by_batches_not_by_rows(owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def file_with(count):
        data = valid_file()
        data["conversations"] = data["conversations"] * count
        return data

    with CaptureQueriesContext(connection) as few:
        upload(owner, file_with(2))
    with CaptureQueriesContext(connection) as many:
        upload(owner, file_with(100))  # 200 messages: a few more batches, not 98 more rows
    assert len(many) <= len(few) + 4
    assert Conversation.objects.count() == 102
