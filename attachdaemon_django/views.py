"""A status page for staff users: HTML that refreshes itself, the JSON it reads (docs/status-json.md),
and the Prometheus metrics (docs/monitoring.md), all behind the same allow rule.

Served by the web workers, which only read: they ask the supervisor over the control socket.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.utils.module_loading import import_string

from attachdaemon_core.hosts import metrics as prometheus
from attachdaemon_core.hosts.status import read_status

from . import conf


def _is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def allowed(request: HttpRequest) -> bool:
    """Staff users, or whoever ``ATTACH_DAEMONS_STATUS_ALLOW`` (a callable taking the request, or
    its dotted path) allows — e.g. a site without ``django.contrib.auth``, or an ops token."""
    rule = getattr(settings, "ATTACH_DAEMONS_STATUS_ALLOW", None)
    if rule is None:
        return _is_staff(getattr(request, "user", None))
    check = import_string(rule) if isinstance(rule, str) else rule
    return bool(check(request))


def status_json(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return JsonResponse({"error": "not allowed"}, status=403)
    data, code = read_status(conf.runtime_dir())
    response = JsonResponse(data, status=code)
    response["Cache-Control"] = "no-store"
    return response


def status_page(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        if getattr(settings, "ATTACH_DAEMONS_STATUS_ALLOW", None) is None and apps.is_installed(
            "django.contrib.auth"
        ):
            from django.contrib.auth.views import redirect_to_login  # needs the auth app's models

            return redirect_to_login(request.get_full_path())
        return HttpResponseForbidden("not allowed")
    data, _code = read_status(conf.runtime_dir())
    return render(request, "attachdaemon_django/status.html", {"status": data})


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; 501 naming the extra when prometheus_client is missing."""
    if not allowed(request):
        return HttpResponseForbidden("not allowed")
    try:
        body, content_type = prometheus.render(conf.runtime_dir())
    except prometheus.MetricsUnavailable as exc:
        return HttpResponse(f"{exc}\n", status=501, content_type="text/plain; charset=utf-8")
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
