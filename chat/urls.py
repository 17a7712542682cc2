from django.contrib.auth import views as auth_views
from django.urls import path

from chat.views import accounts, conversation, pages

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
]
