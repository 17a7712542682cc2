"""The conversation list: pages grouped by day, pin, archive, rename, delete, with the three
personas (owner, stranger, anonymous) and pinned query counts."""

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from chat import sidebar
from chat.models import Attachment, Conversation, Message
from tests.conftest import add_turns

pytestmark = pytest.mark.django_db


def make_conversations(user, count: int, *, title="Chat", **fields) -> list[Conversation]:
    rows = Conversation.objects.bulk_create(
        Conversation(owner=user, model="llama3.2", title=f"{title} {n}", **fields)
        for n in range(count)
    )
    return rows


def age(conversation, **delta) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(
        updated=timezone.now() - timedelta(**delta)
    )


def page_of(client, **params) -> dict:
    response = client.get("/sidebar/", params)
    assert response.status_code == 200
    return response.json()


def titles_in(html: str, rows) -> list[str]:
    return [row.title for row in rows if f">{row.title}</a>" in html]


@pytest.fixture
def owner(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def stranger(other_user):
    client = Client()
    client.force_login(other_user)
    return client


# --- the list -------------------------------------------------------------------------


def test_the_list_shows_only_the_users_conversations_grouped_by_day(owner, user, other_user):
    today, yesterday, last_week, long_ago, pinned = [
        Conversation.objects.create(owner=user, model="llama3.2", title=title)
        for title in ("Fresh", "From yesterday", "Last week", "Long ago", "Pinned one")
    ]
    age(yesterday, days=1)
    age(last_week, days=4)
    Conversation.objects.filter(pk=long_ago.pk).update(
        updated=timezone.now().replace(year=2023, month=3, day=15)
    )
    Conversation.objects.filter(pk=pinned.pk).update(
        pinned=True, updated=timezone.now() - timedelta(days=90)
    )
    Conversation.objects.create(owner=other_user, model="llama3.2", title="Mallory's secret")

    html = owner.get("/").content.decode()
    assert "Mallory&#x27;s secret" not in html and "Mallory's secret" not in html
    labels = ["Pinned", "Today", "Yesterday", "Previous 7 days", "March 2023"]
    positions = [html.index(f">{label}</h2>") for label in labels]
    assert positions == sorted(positions)
    order = [html.index(f">{c.title}</a>") for c in (pinned, today, yesterday, last_week, long_ago)]
    assert order == sorted(order)


def test_the_list_pages_by_cursor_without_gaps_or_repeats(owner, user):
    rows = make_conversations(user, 120)
    # Same time for all: only the id orders them, the cursor must still cut cleanly.
    Conversation.objects.filter(owner=user).update(updated=timezone.now() - timedelta(hours=1))
    Conversation.objects.filter(pk=rows[7].pk).update(pinned=True)

    seen, cursor, pages = [], None, 0
    while True:
        page = page_of(owner, before=cursor) if cursor else page_of(owner)
        seen += [row.title for row in rows if f'data-id="{row.uuid}"' in page["html"]]
        pages += 1
        cursor = page["next"]
        if not cursor:
            break
    assert pages == 3
    assert sorted(seen) == sorted(row.title for row in rows)
    assert len(seen) == len(set(seen)) == 120
    first = page_of(owner)["html"]
    assert first.index("Chat 7<") < first.index("Chat 119<") < first.index("Chat 118<")


def test_a_tampered_cursor_is_refused(owner, user):
    make_conversations(user, 3)
    assert owner.get("/sidebar/", {"before": "abc:def"}).status_code == 400


def test_a_strangers_list_pages_never_show_the_owners_conversations(stranger, user):
    make_conversations(user, 60, title="Alice's")
    cursor = sidebar.make_cursor(Conversation.objects.filter(owner=user).order_by("-id").first())
    for params in ({}, {"before": cursor}, {"archived": "1"}):
        assert "Alice" not in page_of(stranger, **params)["html"]


def test_the_list_needs_a_login(client):
    assert client.get("/sidebar/").status_code == 302
    assert client.get("/archive/").status_code == 302


def test_the_list_and_its_next_page_take_a_fixed_number_of_queries(
    owner, user, django_assert_num_queries
):
    make_conversations(user, 200)
    # session, user, approval (chat.access), one page
    with django_assert_num_queries(4):
        first = page_of(owner)
    with django_assert_num_queries(4):
        second = page_of(owner, before=first["next"])
    assert second["html"].count("conversation-link") == sidebar.PAGE_SIZE


def test_the_chat_page_takes_as_many_queries_for_5_or_300_conversations(
    owner, user, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_conversations(user, 5)
    with CaptureQueriesContext(connection) as few:
        owner.get("/")
    make_conversations(user, 295)
    with django_assert_max_num_queries(len(few)):
        html = owner.get("/").content.decode()
    assert html.count('data-testid="conversation-link"') == sidebar.PAGE_SIZE
    assert re.search(r'data-testid="list-more"\s+data-next="[^"]+"', html)


# --- pin, archive, rename ----------------------------------------------------------------


def test_pin_puts_a_conversation_on_top_and_unpin_takes_it_back(owner, user):
    old, new = make_conversations(user, 2)
    age(old, days=3)
    assert owner.post(f"/c/{old.uuid}/pin/", {"pinned": "1"}).json() == {"pinned": True}
    html = page_of(owner)["html"]
    assert html.index(">Pinned</h2>") < html.index(">Chat 0<") < html.index(">Chat 1<")
    assert owner.post(f"/c/{old.uuid}/pin/", {"pinned": "0"}).json() == {"pinned": False}
    html = page_of(owner)["html"]
    assert "Pinned" not in html and html.index(">Chat 1<") < html.index(">Chat 0<")


def test_archive_moves_a_conversation_to_the_archive_and_back(owner, user, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(title="Old plans", pinned=True)
    reply = owner.post(f"/c/{conversation.uuid}/archive/", {"archived": "1"}).json()
    assert reply == {"archived": True, "pinned": False}
    assert "Old plans" not in owner.get("/").content.decode()
    assert "Old plans" in page_of(owner, archived="1")["html"]
    assert "Old plans" in owner.get("/archive/").content.decode()
    # Still readable.
    assert owner.get(f"/c/{conversation.uuid}/").status_code == 200
    owner.post(f"/c/{conversation.uuid}/archive/", {"archived": "0"})
    assert "Old plans" in owner.get("/").content.decode()
    assert "Old plans" not in owner.get("/archive/").content.decode()


def test_rename_is_the_users_title_and_is_escaped(owner, conversation):
    response = owner.post(f"/c/{conversation.uuid}/rename/", {"title": "  <b>My</b>\n  plans "})
    assert response.json() == {"title": "<b>My</b> plans"}
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("<b>My</b> plans", "user")
    html = owner.get("/").content.decode()
    assert "&lt;b&gt;My&lt;/b&gt; plans" in html and "<b>My</b>" not in html


def test_rename_refuses_an_empty_or_too_long_title(owner, conversation):
    for title in ("   ", "x" * 201):
        response = owner.post(f"/c/{conversation.uuid}/rename/", {"title": title})
        assert response.status_code == 400 and response.json()["error"]
    conversation.refresh_from_db()
    assert conversation.title == "" and conversation.title_source == "message"


def test_renaming_pinning_or_archiving_does_not_move_a_conversation(owner, user):
    old, _new = make_conversations(user, 2)
    age(old, days=2)
    before = Conversation.objects.get(pk=old.pk).updated
    owner.post(f"/c/{old.uuid}/rename/", {"title": "Renamed"})
    owner.post(f"/c/{old.uuid}/pin/", {"pinned": "1"})
    owner.post(f"/c/{old.uuid}/pin/", {"pinned": "0"})
    assert Conversation.objects.get(pk=old.pk).updated == before


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("rename", {"title": "Hijacked"}),
        ("pin", {"pinned": "1"}),
        ("archive", {"archived": "1"}),
        ("delete", {}),
    ],
)
def test_a_stranger_gets_404_and_changes_nothing(stranger, conversation, action, data):
    add_turns(conversation, {"role": "user", "content": "Private"})
    response = stranger.post(f"/c/{conversation.uuid}/{action}/", data)
    assert response.status_code == 404
    assert b"Private" not in response.content
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned, conversation.archived) == ("", False, False)
    assert conversation.messages.count() == 1


@pytest.mark.parametrize("action", ["rename", "pin", "archive", "delete"])
def test_actions_need_a_login_a_post_and_the_csrf_token(client, user, conversation, action):
    url = f"/c/{conversation.uuid}/{action}/"
    assert client.post(url, {"title": "x"}).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url, {"title": "x"}).status_code == 403
    client.force_login(user)
    assert client.get(url).status_code == 405
    assert Conversation.objects.filter(pk=conversation.pk, title="").exists()


# --- delete ----------------------------------------------------------------------------


def test_delete_removes_the_messages_and_the_image_files(
    owner, user, conversation, django_capture_on_commit_callbacks
):
    question = add_turns(conversation, {"role": "user", "content": "Look"})
    add_turns(conversation, {"role": "assistant", "content": "A dot.", "model": "llama3.2"})
    image = Attachment(
        conversation=conversation, message=question, content_type="image/png", size=3
    )
    image.file.save("upload", ContentFile(b"png"), save=True)
    name = image.file.name
    assert default_storage.exists(name)
    other = Conversation.objects.create(owner=user, model="llama3.2", title="Keep me")

    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(f"/c/{conversation.uuid}/delete/").json() == {"deleted": True}

    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not Attachment.objects.exists()
    assert not default_storage.exists(name)
    assert owner.get(f"/c/{conversation.uuid}/").status_code == 404
    assert Conversation.objects.filter(pk=other.pk).exists()


def test_a_stranger_cannot_delete_and_the_files_stay(
    stranger, conversation, django_capture_on_commit_callbacks
):
    image = Attachment(conversation=conversation, content_type="image/png", size=3)
    image.file.save("upload", ContentFile(b"png"), save=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert stranger.post(f"/c/{conversation.uuid}/delete/").status_code == 404
    assert default_storage.exists(image.file.name)
    assert Conversation.objects.filter(pk=conversation.pk).exists()
