from django.contrib.auth import views as auth_views
from django.urls import path

from chat.views import accounts, pages

app_name = "chat"

urlpatterns = [
    path("", pages.home, name="home"),
    path("c/new/", pages.new_conversation, name="new"),
    path("c/<uuid:conversation_uuid>/", pages.conversation, name="conversation"),
    path("api/models/", pages.models, name="models"),
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("pending/", accounts.pending, name="pending"),
]
