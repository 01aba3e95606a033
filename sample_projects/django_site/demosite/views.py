"""The home page: this visit counted through each daemon, and the daemons' live status table."""

from collections.abc import Callable

import sample_daemons
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


def home(request: HttpRequest) -> HttpResponse:
    counters = sample_daemons.visit("django", set(settings.ATTACH_DAEMONS))
    context = {
        "framework": "Django",
        "counters": counters,
        "status_json": reverse("attachdaemon:status-json"),
        "status_page": reverse("attachdaemon:status"),
    }
    response = render(request, "home.html", context)
    response["Cache-Control"] = "no-store"
    return response


class DemoStaff:
    """Not a user (the sample has no database): what attachdaemon's staff check looks at."""

    is_active = True
    is_staff = True
    is_authenticated = True
    is_anonymous = False


def loopback_sees_daemons(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    """Middleware: requests from 127.0.0.1 may read attachdaemon's staff-only status views.

    The demo's choice, to keep it to one command: gunicorn binds 127.0.0.1 only, so whoever can
    reach the site is on this machine. Never do this behind a reverse proxy (every request would
    come from 127.0.0.1): there, install django.contrib.auth and log in as a staff user.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        local = sample_daemons.is_loopback(request.META.get("REMOTE_ADDR"))
        if local and request.path.startswith("/daemons/"):
            request.user = DemoStaff()  # type: ignore[assignment]
        return get_response(request)

    return middleware
