"""Import beyond a single file's checks: Markdown exports named as such, the same export
imported twice, and images through a round trip (export, delete, import), with the
owner, a stranger and the upload checks. (Field-by-field refusals are in
tests/test_history_search_export.py; bad characters and nesting in
tests/test_text_input.py.)"""

import base64
import html
import json
import re

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import AsyncClient, Client

from chat.models import Attachment, Conversation, Message
from tests.conftest import add_turns

pytestmark = pytest.mark.django_db

# A 1x1 PNG in Pillow's own encoding (a stored image is re-encoded without metadata,
# chat.images; these bytes come out of it unchanged) and a 1x1 GIF.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR4nGNgYAAAAAMAAbitOmMAAAAASUVORK5CYII="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # files left behind are visible to the test


@pytest.fixture
def owner(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def stranger(other_user):
    client = Client()
    client.force_login(other_user)
    return client


def upload(client, data, name="export.json"):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post("/import/", {"file": SimpleUploadedFile(name, raw, "application/json")})


def import_error(response) -> str:
    """The error the import page shows."""
    assert response.status_code == 400
    found = re.search(r'data-testid="import-error"><p>(.*?)</p>', response.content.decode(), re.S)
    return html.unescape(found.group(1))


def export_all(client) -> bytes:
    response = client.get("/export/all.json")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def flash(client) -> str:
    """The message the home page shows after an import."""
    return client.get("/").content.decode().replace("&#x27;", "'")


def make_conversation(user, title="Sky colours") -> Conversation:
    conversation = Conversation.objects.create(owner=user, model="llama3.2", title=title)
    add_turns(
        conversation,
        {"role": "user", "content": f"About {title}?"},
        {"role": "assistant", "content": "Because.", "model": "llama3.2"},
    )
    return conversation


def with_image(client, conversation, data=PNG, name="dot.png") -> Attachment:
    """An image uploaded by the page, then sent with the conversation's question."""
    response = client.post(
        f"/c/{conversation.uuid}/attachments/",
        {"image": SimpleUploadedFile(name, data, content_type="image/png")},
    )
    assert response.status_code == 201
    attachment = Attachment.objects.get(uuid=response.json()["id"])
    question = conversation.messages.get(role="user")
    Attachment.objects.filter(pk=attachment.pk).update(message=question)
    return attachment


def served(client, conversation, attachment) -> bytes:
    response = client.get(f"/c/{conversation.uuid}/attachments/{attachment.uuid}/")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# --- only JSON ------------------------------------------------------------------------


def test_a_markdown_export_is_refused_saying_only_json_exports_import(owner, user):
    conversation = make_conversation(user)
    markdown = owner.get(f"/c/{conversation.uuid}/export.md")
    name = re.search(r'filename="(.+)"', markdown["Content-Disposition"]).group(1)
    for file_name in (name, "renamed.json", "notes.txt"):  # by its name, or by its shape
        error = import_error(upload(owner, markdown.content, name=file_name))
        assert error.startswith("This is a Markdown export, made for reading.")
        assert "Only JSON exports can be imported" in error
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("raw", [b"hello, world", b"<html></html>", b"\xff\xfe\x00x"])
def test_any_other_file_is_refused_saying_only_json_exports_import(owner, raw):
    error = import_error(upload(owner, raw, name="notes.txt"))
    assert "Only JSON exports can be imported" in error and "Markdown" not in error
    assert not Conversation.objects.exists()


# --- the same export twice ------------------------------------------------------------


def test_importing_the_same_export_twice_adds_nothing_the_second_time(owner, user):
    for title in ("One", "Two", "Three"):
        make_conversation(user, title)
    exported = export_all(owner)
    Conversation.objects.all().delete()

    assert upload(owner, exported).status_code == 302
    assert "Imported 3 conversations." in flash(owner)
    assert Conversation.objects.count() == 3 and Message.objects.count() == 6

    assert upload(owner, exported).status_code == 302
    assert "Nothing imported: the file's 3 conversations are already there." in flash(owner)
    assert Conversation.objects.count() == 3 and Message.objects.count() == 6


def test_only_the_conversations_not_there_yet_are_imported(owner, user):
    for title in ("One", "Two", "Three"):
        make_conversation(user, title)
    exported = export_all(owner)
    # "Two" deleted: it comes back; the other two are still there.
    owner.post(f"/c/{Conversation.objects.get(title='Two').uuid}/delete/")
    assert upload(owner, exported).status_code == 302
    assert "1 imported, 2 already there." in flash(owner)
    assert sorted(Conversation.objects.values_list("title", flat=True)) == ["One", "Three", "Two"]
    # Deleting the imported copy and importing again brings it back once more.
    owner.post(f"/c/{Conversation.objects.get(title='Two').uuid}/delete/")
    upload(owner, exported)
    assert "1 imported, 2 already there." in flash(owner)
    assert Conversation.objects.filter(title="Two").count() == 1


def test_an_export_of_an_imported_conversation_is_recognised_too(owner, user):
    make_conversation(user, "Original")
    first = export_all(owner)
    Conversation.objects.all().delete()
    upload(owner, first)
    second = export_all(owner)  # holds the imported copy's own id
    upload(owner, second)
    upload(owner, first)
    assert Conversation.objects.count() == 1


def test_a_file_holding_a_conversation_twice_imports_it_once(owner, user):
    make_conversation(user)
    data = json.loads(export_all(owner))
    Conversation.objects.all().delete()
    data["conversations"] *= 2
    upload(owner, data)
    assert Conversation.objects.count() == 1
    assert "1 imported, 1 already there." in flash(owner)


def test_another_users_conversations_never_count_as_already_there(
    owner, stranger, user, other_user
):
    mine = make_conversation(user, "Shared by file")
    exported = export_all(owner)
    assert upload(stranger, exported).status_code == 302
    assert "Imported 1 conversation." in flash(stranger)
    theirs = Conversation.objects.get(owner=other_user)
    assert theirs.title == "Shared by file" and theirs.uuid != mine.uuid
    # And the owner's own import is not blocked by the stranger's copy.
    assert "already there" in (upload(owner, exported) and flash(owner))
    assert Conversation.objects.filter(owner=user).count() == 1


# --- images ---------------------------------------------------------------------------


def test_images_survive_export_delete_import_and_stay_the_owners(
    owner, stranger, user, settings, django_capture_on_commit_callbacks
):
    conversation = make_conversation(user)
    png = with_image(owner, conversation)
    gif = with_image(owner, conversation, GIF, "dot.gif")
    before = [served(owner, conversation, png), served(owner, conversation, gif)]

    exported = json.loads(export_all(owner))
    [question] = [m for m in exported["conversations"][0]["messages"] if m["role"] == "user"]
    assert [(i["content_type"], i["name"]) for i in question["images"]] == [
        ("image/png", f"{png.uuid}.png"),
        ("image/gif", f"{gif.uuid}.gif"),
    ]
    assert [base64.b64decode(i["data"]) for i in question["images"]] == before

    with django_capture_on_commit_callbacks(execute=True):
        owner.post(f"/c/{conversation.uuid}/delete/")
    assert stored_files(settings) == []

    assert upload(owner, exported).status_code == 302
    assert "Imported 1 conversation." in flash(owner)
    restored = Conversation.objects.get()
    images = list(Attachment.objects.filter(conversation=restored).order_by("id"))
    assert [image.message.content for image in images] == ["About Sky colours?"] * 2
    page = owner.get(f"/c/{restored.uuid}/").content.decode()
    for image, data in zip(images, before, strict=True):
        url = f"/c/{restored.uuid}/attachments/{image.uuid}/"
        assert f'src="{url}"' in page
        assert served(owner, restored, image) == data
        assert stranger.get(url).status_code == 404
        assert Client().get(url).status_code == 302
    assert len(stored_files(settings)) == 2


@pytest.mark.django_db(transaction=True)  # async (Channels pitfall 6)
async def test_an_export_with_images_streams_under_asgi_too(user, settings):
    from asgiref.sync import sync_to_async

    def prepare():
        client = Client()
        client.force_login(user)
        conversation = make_conversation(user)
        with_image(client, conversation)
        return client.cookies["sessionid"].value

    session = await sync_to_async(prepare)()
    client = AsyncClient()
    client.cookies["sessionid"] = session
    try:
        response = await client.get("/export/all.json")
        assert response.status_code == 200 and response.is_async
        body = b"".join([piece async for piece in response.streaming_content])
    finally:
        # The view ran in asgiref's worker thread, whose connection would outlive the
        # test (on PostgreSQL, CONN_MAX_AGE keeps it) and block dropping the test database.
        await sync_to_async(connections.close_all)()
    [conversation] = json.loads(body)["conversations"]
    [question] = [m for m in conversation["messages"] if m["role"] == "user"]
    assert base64.b64decode(question["images"][0]["data"]) == PNG


def test_an_export_with_images_takes_a_fixed_number_of_queries(
    owner, user, django_assert_num_queries
):
    for n in range(5):
        with_image(owner, make_conversation(user, f"C{n}"))
    # session, user, approval (chat.access), conversations, messages, images
    with django_assert_num_queries(6):
        data = json.loads(export_all(owner))
    assert sum(len(m["images"]) for c in data["conversations"] for m in c["messages"]) == 5


def one_image_file(**image) -> dict:
    return {
        "format": "ollama-chat",
        "version": 1,
        "conversations": [
            {
                "id": "c1",
                "title": "Picture",
                "model": "llava",
                "messages": [
                    {"id": "q", "role": "user", "content": "What is it?", "images": [image]},
                    {"id": "a", "parent": "q", "role": "assistant", "content": "A dot."},
                ],
            }
        ],
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ({"data": b64(b"<svg onload=alert(1)>")}, "Only PNG, JPEG, GIF and WebP"),
        ({"data": b64(b"GIF8not quite")}, "Only PNG, JPEG, GIF and WebP"),
        ({"data": "not base64!"}, "not valid base64"),
        ({"data": 12}, "data must be base64 text"),
        ({"data": b64(PNG), "name": 5}, "name must be text"),
        ({"data": b64(PNG + b"\0" * 2000)}, "too large"),
    ],
)
def test_an_image_that_would_not_pass_the_upload_checks_refuses_the_file(
    owner, settings, image, says
):
    settings.MAX_IMAGE_BYTES = 1024
    response = upload(owner, one_image_file(**image))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Conversation 1, message 1, image 1" in page and says in page
    assert not Conversation.objects.exists() and not Attachment.objects.exists()
    assert stored_files(settings) == []


def test_too_many_images_on_one_message_refuse_the_file(owner, settings):
    data = one_image_file(data=b64(PNG))
    question = data["conversations"][0]["messages"][0]
    question["images"] *= settings.MAX_IMAGES_PER_MESSAGE + 1
    response = upload(owner, data)
    assert response.status_code == 400
    assert f"at most {settings.MAX_IMAGES_PER_MESSAGE} images" in response.content.decode()
    assert not Conversation.objects.exists() and stored_files(settings) == []


def test_the_image_type_comes_from_the_bytes_not_the_file(owner):
    upload(owner, one_image_file(data=b64(GIF), content_type="image/png", name="x.png"))
    [image] = Attachment.objects.all()
    assert image.content_type == "image/gif" and default_storage.exists(image.file.name)


def test_images_listed_without_their_bytes_are_reported_missing(owner):
    # Exports made before images were included listed only their type and size.
    assert upload(owner, one_image_file(content_type="image/png", size=68)).status_code == 302
    page = flash(owner)
    assert "Imported 1 conversation." in page
    assert "1 image could not be restored" in page
    assert Message.objects.count() == 2 and not Attachment.objects.exists()
