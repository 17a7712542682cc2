from django.contrib.auth import views as auth_views
from django.urls import path

from chat.views import accounts, conversation, history, pages

app_name = "chat"

urlpatterns = [
    path("", pages.home, name="home"),
    path("c/new/", pages.new_conversation, name="new"),
    path("c/<uuid:conversation_uuid>/", pages.conversation, name="conversation"),
    path("c/<uuid:conversation_uuid>/settings/", conversation.settings_view, name="settings"),
    path("c/<uuid:conversation_uuid>/messages/", conversation.messages_view, name="messages"),
    path(
        "c/<uuid:conversation_uuid>/alternates/<uuid:message_uuid>/",
        conversation.alternate_view,
        name="alternate",
    ),
    path("c/<uuid:conversation_uuid>/attachments/", conversation.upload_view, name="upload"),
    path(
        "c/<uuid:conversation_uuid>/attachments/<uuid:attachment_uuid>/",
        conversation.attachment_view,
        name="attachment",
    ),
    path("settings/defaults/", conversation.defaults_view, name="defaults"),
    path("api/models/", pages.models, name="models"),
    # Model names hold "/" and ":" (namespace/model:tag).
    path("api/models/<path:name>/", conversation.model_view, name="model"),
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("pending/", accounts.pending, name="pending"),
    # History: the list, search, export and import (chat/views/history.py).
    path("sidebar/", history.sidebar_view, name="sidebar"),
    path("archive/", history.archive_view, name="archive"),
    path("search/", history.search_view, name="search"),
    path("export/all.json", history.export_all_view, name="export_all"),
    path("import/", history.import_view, name="import"),
    path("c/<uuid:conversation_uuid>/rename/", history.rename_view, name="rename"),
    path("c/<uuid:conversation_uuid>/pin/", history.pin_view, name="pin"),
    path(
        "c/<uuid:conversation_uuid>/archive/",
        history.archive_conversation_view,
        name="archive_conversation",
    ),
    path("c/<uuid:conversation_uuid>/delete/", history.delete_view, name="delete"),
    path("c/<uuid:conversation_uuid>/export.md", history.export_markdown_view, name="export_md"),
    path("c/<uuid:conversation_uuid>/export.json", history.export_json_view, name="export_json"),
    path(
        "c/<uuid:conversation_uuid>/m/<uuid:message_uuid>/",
        history.open_message_view,
        name="open_message",
    ),
]
