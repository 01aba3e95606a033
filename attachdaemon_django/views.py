"""A status page for staff users: HTML that refreshes itself, and the JSON it reads (SPEC §8).

Served by the web workers, which only read: they ask the supervisor over the control socket.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from attachdaemon_core import commands
from attachdaemon_core.control import client

from . import conf


def _is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def read_status() -> tuple[dict[str, Any], int]:
    """The public status JSON and an HTTP status: 200, or 503 when no supervisor answers."""
    runtime_dir = conf.runtime_dir()
    try:
        result = client.call(runtime_dir, "status", timeout=commands.STATUS_TIMEOUT)
    except (client.NoSupervisor, client.ControlError) as exc:
        return {"supervisor": None, "daemons": [], "error": str(exc), "runtime_dir": runtime_dir}, 503
    return commands.public_status(result), 200


def status_json(request: HttpRequest) -> HttpResponse:
    if not _is_staff(getattr(request, "user", None)):
        return JsonResponse({"error": "staff only"}, status=403)
    data, code = read_status()
    response = JsonResponse(data, status=code)
    response["Cache-Control"] = "no-store"
    return response


@user_passes_test(_is_staff)
def status_page(request: HttpRequest) -> HttpResponse:
    data, _code = read_status()
    return render(request, "attachdaemon_django/status.html", {"status": data})
