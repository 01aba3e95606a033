"""docs/status.schema.json against real output: a real supervisor (owned by ``attachdaemon run``)
with daemons in every kind and most states, its ``status --json`` validated at every look; the
same command with no supervisor (exit 4); and the Flask status page's JSON, 200 and 503."""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask

from attachdaemon_flask import AttachDaemons
from attachdaemon_flask.views import status_blueprint
from tests.docs import blocks
from tests.docs.project import Project
from tests.helpers.harness import wait_for
from tests.helpers.hosts import REPO, free_port

PY = sys.executable
SLEEP = "import time; time.sleep(3600)"
# A smart daemon as redis is one: it forks, the parent exits, the child writes its pidfile.
SMART = (
    "import os, sys, time\n"
    "if os.fork():\n    sys.exit(0)\n"
    "os.setsid()\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "time.sleep(3600)\n"
)


def validator() -> jsonschema.Draft202012Validator:
    schema = blocks.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def valid(data: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(validator().iter_errors(data), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return data


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    problems = p.cleanup()
    assert not problems, problems


def _toml(tmp: Path, lock: str) -> str:
    web, dead = free_port(), free_port()

    def argv(*args: str) -> str:
        return json.dumps([PY, *args])

    return f"""
[daemons.up]
command = {argv("-c", SLEEP)}

[daemons.web]
command = {argv("-m", "http.server", str(web), "--bind", "127.0.0.1")}
ready = {{ tcp = "127.0.0.1:{web}" }}

[daemons.unready]
command = {argv("-c", SLEEP)}
ready = {{ tcp = "127.0.0.1:{dead}" }}
ready_timeout = 600

[daemons.missing]
command = "no-such-program-for-the-status-schema-test"

[daemons.once]
command = {argv("-c", "pass")}
restart = "never"

[daemons.off]
command = {argv("-c", SLEEP)}
autostart = false

[daemons.killed]
command = {argv("-c", SLEEP)}

[daemons.smart]
command = {argv("-c", SMART, str(tmp / "smart.pid"))}
pidfile = "smart.pid"

[daemons.smart2]
command = {argv("-c", SLEEP)}
pidfile = "smart2.pid"
daemonize = true

[daemons.lead]
command = {argv("-c", SLEEP)}
leader = {{ lock = "{lock}" }}

[daemons.tick]
command = {argv("-c", "pass")}
schedule = "* * * * * *"
timeout = 30
"""


def test_real_status_json_validates_against_the_schema(project: Project, tmp_path: Path) -> None:
    config = tmp_path / "daemons.toml"
    config.write_text(_toml(tmp_path, f"status-schema-{tmp_path.name}"))
    project.pidfiles += [tmp_path / "smart.pid", tmp_path / "smart2.pid"]
    owner = project.start(["attachdaemon", "-c", str(config), "run"], tmp_path, "run")
    seen: list[dict[str, Any]] = []

    def status() -> dict[str, Any]:
        code, data = project.status_json(["attachdaemon", "-c", str(config), "status", "--json"], tmp_path)
        if data.get("supervisor") is None:
            assert owner.proc.poll() is None, owner.output()
            return {}
        assert code == 3, (code, data)  # some daemons are not healthy, by design
        seen.append(valid(data))
        return {d["name"]: d for d in data["daemons"]}

    def settled() -> dict[str, Any] | None:
        ds = status()
        if not ds:
            return None
        ok = (
            all(
                ds[n]["state"] == "running"
                for n in ("up", "web", "unready", "killed", "smart", "smart2", "lead")
            )
            and ds["web"]["ready"] is True
            and ds["unready"]["ready"] is False
            and ds["missing"]["error"] is not None
            and ds["once"]["state"] == "exited"
            and ds["off"]["state"] == "stopped"
            and ds["lead"]["leader"] is not None
            and ds["lead"]["leader"]["role"] == "leader"
            and ds["tick"]["job"]["last_exit"] is not None
        )
        return ds if ok else None

    try:
        ds = wait_for(settled, 60, "every daemon in its expected state", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- run's output:\n{owner.output()}") from None
    victim = ds["killed"]["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            (d := status().get("killed")) and d["last_exit"] and d["last_exit"]["signal"] == signal.SIGKILL
        ),
        30,
        "'killed' restarted after SIGKILL",
        interval=0.1,
    )
    result = project.run(["attachdaemon", "-c", str(config), "stop", "up"], tmp_path, check=True)
    assert result.stdout == "stop: up\n"
    wait_for(lambda: status()["up"]["state"] == "stopped", 20, "'up' stopped by command", interval=0.1)
    # CPU use is measured between two looks at least a second apart: keep looking until one shows it.
    wait_for(lambda: any(d["cpu_percent"] is not None for d in status().values()), 15, "a cpu_percent", 0.25)

    shown = [d for data in seen for d in data["daemons"]]
    assert {d["kind"] for d in shown} == {"attached", "smart", "smart2"}
    assert {"running", "stopped", "exited"} <= {d["state"] for d in shown}
    assert {d["state"] for d in shown if d["name"] == "missing"} & {"starting", "backoff"}
    assert any(d["last_exit"] and d["last_exit"]["code"] == 0 for d in shown)
    assert any(d["leader"] and d["leader"]["role"] == "leader" for d in shown)
    assert any(d["rss_bytes"] for d in shown) and any(d["started_at"] for d in shown)
    assert any(d["job"] and d["job"]["runs"] and d["job"]["last_duration"] is not None for d in shown)
    assert all(d["job"] is None for d in shown if d["name"] != "tick")
    final = seen[-1]

    # The Flask status page serves the same object (200), and the page's own one without a supervisor.
    code, page = _flask_page(final["supervisor"]["runtime_dir"])
    assert code == 200 and valid(page)["supervisor"] == final["supervisor"]
    code, page = _flask_page(str(tmp_path / "no-supervisor-here"))
    assert code == 503 and valid(page)["supervisor"] is None and page["daemons"] == []

    # No supervisor for another file: exit 4, still one object, naming the supervisor that runs.
    other = tmp_path / "other.toml"
    other.write_text("")
    code, data = project.status_json(["attachdaemon", "-c", str(other), "status", "--json"], tmp_path)
    assert code == 4 and valid(data)["supervisor"] is None
    assert {"pid": final["supervisor"]["pid"], "runtime_dir": final["supervisor"]["runtime_dir"]} in data[
        "other_supervisors"
    ]

    assert project.interrupt(owner) == 0, owner.output()
    code, data = project.status_json(["attachdaemon", "-c", str(config), "status", "--json"], tmp_path)
    assert code == 4 and valid(data)["supervisor"] is None
    for d in final["daemons"]:
        if d["kind"] != "attached" and d["pid"]:
            project.stop_smart(d["pid"], f"smart daemon {d['name']}")


def _flask_page(runtime_dir: str) -> tuple[int, dict[str, Any]]:
    app = Flask(__name__)
    app.config["ATTACH_DAEMONS"] = {}
    app.config["ATTACH_DAEMONS_RUNTIME_DIR"] = runtime_dir
    AttachDaemons(app)
    app.register_blueprint(status_blueprint(allow=lambda: True), url_prefix="/daemons")
    response = app.test_client().get("/daemons/status.json")
    data: dict[str, Any] = response.get_json()
    return response.status_code, data


@pytest.mark.unit
def test_the_schema_is_exact() -> None:
    """Not a schema anything passes: a key missing, an unknown key (such as the control socket's
    internal ``autostart``), a state or a kind not in the lists are each refused."""
    good: dict[str, Any] = json.loads(blocks.doc_blocks(REPO / "docs" / "status-json.md", "json")[0])
    valid(good)
    broken = []
    for change in (
        lambda d: d["daemons"][0].pop("leader"),
        lambda d: d["daemons"][0].update(autostart=True),
        lambda d: d["daemons"][0].update(state="sleeping"),
        lambda d: d["daemons"][0].update(kind="cron"),
        lambda d: d["supervisor"].update(owners=["1"]),
        lambda d: d.update(extra=1),
    ):
        bad = copy.deepcopy(good)
        change(bad)
        broken.append(list(validator().iter_errors(bad)))
    assert all(broken), broken
