"""The status page and its JSON, served by a web worker that asks the supervisor (docs/status-json.md)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from django.test import RequestFactory
from django.test.utils import override_settings

from attachdaemon_core.spec.model import DaemonSpec
from attachdaemon_django import views
from tests.helpers.harness import Sandbox, wait_for

STAFF = SimpleNamespace(is_active=True, is_staff=True, is_authenticated=True)
VISITOR = SimpleNamespace(is_active=True, is_staff=False, is_authenticated=True)


def get(path: str, user: object) -> object:
    request = RequestFactory().get(path)
    request.user = user  # type: ignore[attr-defined]
    return request


def test_status_json__staff_get_spec_8_json(sandbox: Sandbox) -> None:
    sandbox.join(sandbox.owner(), [DaemonSpec(name="kv", command=("sleep", "1000"))])
    wait_for(lambda: sandbox.running("kv"), 5, "kv")
    with override_settings(ATTACH_DAEMONS_RUNTIME_DIR=sandbox.runtime_dir):
        response = views.status_json(get("/status.json", STAFF))  # type: ignore[arg-type]
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    data = json.loads(response.content)
    assert data["supervisor"]["runtime_dir"] == sandbox.runtime_dir
    assert [(d["name"], d["state"]) for d in data["daemons"]] == [("kv", "running")]
    assert "held" not in data["daemons"][0]


def test_status_json__not_staff__403(sandbox: Sandbox) -> None:
    response = views.status_json(get("/status.json", VISITOR))  # type: ignore[arg-type]
    assert response.status_code == 403


def test_status_json__no_supervisor__503_naming_the_directory(sandbox: Sandbox) -> None:
    with override_settings(ATTACH_DAEMONS_RUNTIME_DIR=sandbox.runtime_dir):
        response = views.status_json(get("/status.json", STAFF))  # type: ignore[arg-type]
    assert response.status_code == 503
    assert json.loads(response.content)["runtime_dir"] == sandbox.runtime_dir


def test_status_page__renders_the_table_for_staff(sandbox: Sandbox) -> None:
    sandbox.join(sandbox.owner(), [DaemonSpec(name="kv", command=("sleep", "1000"))])
    wait_for(lambda: sandbox.running("kv"), 5, "kv")
    with override_settings(ATTACH_DAEMONS_RUNTIME_DIR=sandbox.runtime_dir):
        response = views.status_page(get("/", STAFF))  # type: ignore[arg-type]
    html = response.content.decode()
    assert response.status_code == 200 and "kv" in html and "running" in html
    assert "status.json" in html  # the page refreshes itself from the JSON


def loopback_only(request: object) -> bool:
    return getattr(request, "META", {}).get("REMOTE_ADDR") == "127.0.0.1"


def test_status_allow_setting__a_callable_or_dotted_path_decides(sandbox: Sandbox) -> None:
    sandbox.join(sandbox.owner(), [DaemonSpec(name="kv", command=("sleep", "1000"))])
    wait_for(lambda: sandbox.running("kv"), 5, "kv")
    with override_settings(ATTACH_DAEMONS_RUNTIME_DIR=sandbox.runtime_dir,
                           ATTACH_DAEMONS_STATUS_ALLOW="tests.django.test_views.loopback_only"):  # fmt: skip
        assert views.status_json(get("/status.json", VISITOR)).status_code == 200  # type: ignore[arg-type]
        remote = RequestFactory().get("/status.json", REMOTE_ADDR="203.0.113.9")
        remote.user = STAFF  # type: ignore[attr-defined]
        assert views.status_json(remote).status_code == 403
        assert views.status_page(remote).status_code == 403
