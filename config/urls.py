from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("models/", include("models_admin.urls")),
    path("", include("chat.urls")),
]
