"""Pages and JSON endpoints with the three personas: owner, stranger, anonymous."""

import uuid

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from chat.models import Conversation, Message, Profile
from tests.conftest import add_turns

pytestmark = pytest.mark.django_db


def test_the_home_page_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("chat:login"))


def test_the_home_page_lists_only_the_users_conversations(client, user, other_user):
    Conversation.objects.create(owner=user, model="llama3.2", title="Mine about cats")
    Conversation.objects.create(owner=other_user, model="llama3.2", title="Secret plans")
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"Mine about cats" in response.content
    assert b"Secret plans" not in response.content
    assert response["Content-Security-Policy"].startswith("default-src 'self'")


def test_the_owner_sees_the_conversation_with_its_history(client, user, conversation):
    add_turns(
        conversation,
        {"role": "user", "content": "What is 2+2?"},
        {
            "role": "assistant",
            "content": "It is 4.",
            "model": "llama3.2",
            "stats": {"eval_count": 10, "eval_duration": 500_000_000},
        },
    )
    client.force_login(user)
    response = client.get(f"/c/{conversation.uuid}/")
    assert response.status_code == 200
    assert b"What is 2+2?" in response.content
    assert b"It is 4." in response.content
    assert b"20.0 tokens/s" in response.content


def test_a_stranger_gets_404_for_a_conversation(client, other_user, conversation):
    add_turns(conversation, {"role": "user", "content": "My secret question"})
    client.force_login(other_user)
    response = client.get(f"/c/{conversation.uuid}/")
    assert response.status_code == 404
    assert b"My secret question" not in response.content


def test_anonymous_is_sent_to_login_for_a_conversation(client, conversation):
    response = client.get(f"/c/{conversation.uuid}/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("chat:login"))


def test_an_unknown_conversation_is_404(client, user):
    client.force_login(user)
    assert client.get(f"/c/{uuid.uuid4()}/").status_code == 404


def test_model_text_is_escaped_in_the_page(client, user, conversation):
    add_turns(
        conversation,
        {"role": "assistant", "content": '<img src=x onerror="alert(1)"><script>alert(2)</script>'},
    )
    client.force_login(user)
    html = client.get(f"/c/{conversation.uuid}/").content.decode()
    assert "<img src=x" not in html
    assert "<script>alert(2)" not in html
    assert "&lt;img src=x" in html


def test_a_new_conversation_is_created_for_the_owner(client, user):
    client.force_login(user)
    response = client.post("/c/new/", {"model": "llama3.2"})
    assert response.status_code == 201
    created = Conversation.objects.get(uuid=response.json()["id"])
    assert created.owner == user and created.model == "llama3.2"
    assert response.json()["url"] == f"/c/{created.uuid}/"


def test_a_new_conversation_needs_a_valid_model(client, user):
    client.force_login(user)
    response = client.post("/c/new/", {"model": "not a model!"})
    assert response.status_code == 400
    assert "model" in response.json()["error"]
    assert not Conversation.objects.exists()


def test_a_new_conversation_needs_login_and_csrf(client, user):
    assert client.post("/c/new/", {"model": "llama3.2"}).status_code == 302
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/c/new/", {"model": "llama3.2"}).status_code == 403
    assert not Conversation.objects.exists()


def test_the_model_list_comes_from_ollama(client, user, fake):
    client.force_login(user)
    response = client.get("/api/models/")
    assert response.status_code == 200
    names = [model["name"] for model in response.json()["models"]]
    assert "llama3.2:latest" in names and "qwen3:latest" in names


def test_the_model_list_says_when_ollama_is_down(client, user, settings):
    settings.OLLAMA_URL = "http://127.0.0.1:9"
    client.force_login(user)
    response = client.get("/api/models/")
    assert response.status_code == 503
    # Not where: the host's address is internal (staff see it: test_internal_addresses).
    assert response.json()["error"] == (
        "The Ollama server is not reachable. Answers can't be written until it is back."
    )


def test_the_model_list_needs_a_login(client):
    assert client.get("/api/models/").status_code == 401


def test_a_streaming_answer_of_a_dead_process_shows_as_interrupted(client, user, conversation):
    add_turns(
        conversation,
        {
            "role": "assistant",
            "content": "Half",
            "status": Message.Status.STREAMING,
            "task_channel": "generation.gone!x",
        },
    )
    client.force_login(user)
    response = client.get(f"/c/{conversation.uuid}/")
    assert b'data-status="interrupted"' in response.content
    assert conversation.messages.get().status == Message.Status.INTERRUPTED


# --- accounts -------------------------------------------------------------------------


def _signup(client, username):
    return client.post(
        "/signup/",
        {"username": username, "password1": "a-long-password-9", "password2": "a-long-password-9"},
    )


def test_the_first_account_becomes_the_administrator(client, settings):
    settings.SIGNUP_MODE = "closed"  # the first account is always allowed
    response = _signup(client, "founder")
    assert response.status_code == 302
    founder = User.objects.get(username="founder")
    assert founder.is_staff and founder.is_superuser
    assert client.get("/").status_code == 200  # logged in straight away


def test_later_accounts_are_plain_users_when_signup_is_open(client, staff_user, settings):
    settings.SIGNUP_MODE = "open"
    assert _signup(client, "bob").status_code == 302
    bob = User.objects.get(username="bob")
    assert not bob.is_staff and not bob.is_superuser
    assert Profile.objects.get(user=bob).approved
    assert b"waiting for an administrator" not in client.get("/").content


def test_closed_signup_refuses_new_accounts(client, staff_user, settings):
    settings.SIGNUP_MODE = "closed"
    response = _signup(client, "bob")
    assert response.status_code == 403
    assert b"closed" in response.content
    assert not User.objects.filter(username="bob").exists()


def test_approval_signup_leaves_the_account_pending_until_approved(client, staff_user, settings):
    settings.SIGNUP_MODE = "approval"
    response = _signup(client, "bob")
    assert response["Location"] == reverse("chat:pending")
    # The chat itself is closed to it (chat.access): the pending page says why.
    page = client.get("/", follow=True)
    assert page.redirect_chain == [(reverse("chat:pending"), 302)]
    assert b"waiting for an administrator" in page.content
    assert client.post("/c/new/", {"model": "llama3.2"}).status_code == 403

    from chat.services import approve_users

    approve_users(User.objects.filter(username="bob"))
    assert client.post("/c/new/", {"model": "llama3.2"}).status_code == 201


def test_an_administrator_approves_accounts_in_the_admin(client, staff_user, settings):
    settings.SIGNUP_MODE = "approval"
    _signup(client, "bob")
    bob = User.objects.get(username="bob")
    admin = client.__class__()
    admin.force_login(staff_user)
    response = admin.post(
        "/admin/chat/profile/",
        {"action": "approve", "_selected_action": [Profile.objects.get(user=bob).pk]},
    )
    assert response.status_code == 302
    assert Profile.objects.get(user=bob).approved


def test_login_and_logout(client, user):
    response = client.post("/login/", {"username": "alice", "password": "a-long-password-123"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_repeated_failed_logins_are_throttled(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 3  # LOGIN_ATTEMPTS_LIMIT; more cases in test_login_throttling
    for _ in range(2):
        response = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    # The third failure already answers with the lockout page.
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    response = client.post("/login/", {"username": "alice", "password": "a-long-password-123"})
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    assert client.get("/").status_code == 302


def test_the_admin_is_staff_only(client, user, staff_user):
    client.force_login(user)
    assert client.get("/admin/").status_code == 302
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200


def test_a_server_error_page_says_what_to_do(client, settings):
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "wait a few seconds and reload" in html
