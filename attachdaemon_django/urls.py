"""Mount with ``path("daemons/", include("attachdaemon_django.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "attachdaemon"
urlpatterns = [
    path("", views.status_page, name="status"),
    path("status.json", views.status_json, name="status-json"),
    path("metrics", views.metrics, name="metrics"),
]
