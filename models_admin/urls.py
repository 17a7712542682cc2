# Model names contain "/" and ":", so they travel in the query string or the form,
# never in the path (where "ns/delete" would be ambiguous).
from django.urls import path

from models_admin import views

app_name = "models_admin"

urlpatterns = [
    path("", views.index, name="index"),
    path("show/", views.detail, name="detail"),
    path("pull/", views.pull, name="pull"),
    path("pulls/<uuid:pull_uuid>/cancel/", views.cancel_pull, name="cancel_pull"),
    path("load/", views.load, name="load"),
    path("unload/", views.unload, name="unload"),
    path("delete/", views.delete, name="delete"),
    path("copy/", views.copy, name="copy"),
]
