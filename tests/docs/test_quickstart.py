"""The README's quick starts as a newcomer runs them: a new project, the README's snippets pasted
in (read from README.md, not copied here), the dev server or ``attachdaemon run`` started, every
declared daemon running and ready within its timeout (as ``status --json`` shows it), then Ctrl-C
(SIGINT to the server's process group) and nothing left: the attached daemons and the supervisor
gone, the smart daemons still running as documented, then stopped by the test by the pid status
gave.

A daemon's timeout: the ``start_timeout`` of a smart daemon plus the ``ready_timeout`` of one with
a ready probe, plus ``BOOT`` seconds for the server to come up and start the supervisor.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from attachdaemon_core.spec.config_file import load_toml
from attachdaemon_core.spec.model import DaemonSpec
from attachdaemon_flask.extension import state_of
from tests.docs import blocks
from tests.docs.project import Project, missing_programs
from tests.helpers.harness import wait_for
from tests.helpers.hosts import Server, free_port

BOOT = 30.0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    problems = p.cleanup()
    assert not problems, problems


def skip_if_missing(specs: tuple[DaemonSpec, ...]) -> None:
    missing = missing_programs([os.path.basename(s.command[0]) for s in specs])
    if missing:
        pytest.skip(f"the quick start needs {', '.join(missing)} (not installed here; .ci/run installs it)")


def deadline(spec: DaemonSpec) -> float:
    seconds = BOOT
    if spec.kind != "attached":
        seconds += spec.start_timeout
    if spec.ready is not None:
        seconds += spec.ready_timeout
    return seconds


def all_ready_in_time(
    project: Project, status: list[str], cwd: Path, specs: tuple[DaemonSpec, ...], server: Server
) -> dict[str, Any]:
    """Poll ``status`` until every declared daemon runs and is ready; each must be by its deadline."""
    started = time.monotonic()
    names = {s.name for s in specs}
    ready_at: dict[str, float] = {}
    last: list[dict[str, Any]] = [{}]

    def look() -> dict[str, Any] | None:
        if server.proc.poll() is not None:
            raise AssertionError(f"{' '.join(server.argv)} exited {server.proc.returncode}")
        code, data = project.status_json(status, cwd)
        last[0] = data
        if data.get("supervisor") is None:
            return None
        jsonschema.validate(data, blocks.schema(), cls=jsonschema.Draft202012Validator)
        daemons = {d["name"]: d for d in data["daemons"]}
        assert set(daemons) == names, f"status shows {sorted(daemons)}, the README declares {sorted(names)}"
        for name, d in daemons.items():
            if d["state"] == "running" and d["ready"] is True:
                ready_at.setdefault(name, time.monotonic() - started)
        return data if code == 0 and len(ready_at) == len(names) else None

    try:
        data = wait_for(look, max(deadline(s) for s in specs), "every daemon running and ready", 0.2)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- last status: {json.dumps(last[0], indent=1)}\n{server.output()}"
        ) from None
    late = {s.name: ready_at[s.name] for s in specs if ready_at[s.name] > deadline(s)}
    assert data is not None and not late, f"ready after their timeout: {late}"
    return data


def test_django_quick_start(project: Project, tmp_path: Path) -> None:
    where = tmp_path / "mysite"
    where.mkdir()
    project.run(["django-admin", "startproject", "mysite", str(where)], tmp_path, check=True)
    with (where / "mysite" / "settings.py").open("a") as f:
        f.write("\n\n" + blocks.readme_block("python", "# settings.py"))
    with (where / "mysite" / "urls.py").open("a") as f:
        f.write("\n\n" + blocks.readme_block("python", "# urls.py"))
    show = (
        "import json; from attachdaemon_django import conf; "
        "print(json.dumps([s.to_wire() for s in conf.specs()]))"
    )
    out = project.run(["python", "manage.py", "shell", "-c", show], where, check=True).stdout
    specs = tuple(DaemonSpec.from_wire(w) for w in json.loads(out.strip().splitlines()[-1]))
    skip_if_missing(specs)
    project.pidfiles += [Path(s.pidfile) for s in specs if s.pidfile]

    port = free_port()
    server = project.start(["python", "manage.py", "runserver", f"127.0.0.1:{port}"], where, "runserver")
    status = ["python", "manage.py", "daemons", "status", "--json"]
    data = all_ready_in_time(project, status, where, specs, server)
    # the urls.py snippet mounted the status page: staff only, so a login redirect and a 403
    page = wait_for(lambda: blocks.http_get(port, "/daemons/"), BOOT, "runserver answering")
    assert page.startswith("HTTP/1.1 302") and "Location: /accounts/login/?next=/daemons/" in page, page
    assert blocks.http_get(port, "/daemons/status.json").startswith("HTTP/1.1 403")

    assert project.interrupt(server) == 0, server.output()
    blocks.stop_and_check(project, data)
    code, gone = project.status_json(status, where)
    assert code == 4 and gone["supervisor"] is None


def test_flask_quick_start(project: Project, tmp_path: Path) -> None:
    where = tmp_path / "hello"
    where.mkdir()
    app_py = where / "app.py"
    app_py.write_text(blocks.readme_block("python", "# app.py"))
    app = runpy.run_path(str(app_py), run_name="app")["create_app"]()  # in pytest: starts nothing
    specs = state_of(app).declared.specs
    skip_if_missing(specs)

    port = free_port()
    server = project.start(["flask", "run", "--port", str(port)], where, "flask")
    status = ["flask", "daemons", "status", "--json"]
    data = all_ready_in_time(project, status, where, specs, server)
    page = wait_for(lambda: blocks.http_get(port, "/"), BOOT, "flask run answering")
    assert page.startswith("HTTP/1.1 404"), page  # the app has no routes: Flask answers

    assert project.interrupt(server) == 0, server.output()
    blocks.stop_and_check(project, data)
    code, gone = project.status_json(status, where)
    assert code == 4 and gone["supervisor"] is None


def test_toml_quick_start_with_attachdaemon_run(project: Project, tmp_path: Path) -> None:
    where = tmp_path / "app"
    where.mkdir()
    source = blocks.readme_block("toml", "# daemons.toml (relative paths start in this file's directory)")
    (where / "daemons.toml").write_text(source)
    specs = load_toml(str(where / "daemons.toml")).specs
    skip_if_missing(specs)
    project.pidfiles += [Path(s.pidfile) for s in specs if s.pidfile]
    line = blocks.readme_line("sh", r"^attachdaemon -c daemons\.toml run\b")
    command = blocks.sh_commands(line)[0]
    assert command.background and "-- uvicorn app:app" in command.line, command
    (where / "app.py").write_text(blocks.ASGI_APP)  # the reader's own app, which the README leaves out
    port = int(re.findall(r"--port (\d+)", command.line)[0])

    server = project.start(["bash", "-c", f"exec {command.line}"], where, "run")
    status = ["attachdaemon", "-c", "daemons.toml", "status", "--json"]
    data = all_ready_in_time(project, status, where, specs, server)
    page = wait_for(lambda: blocks.http_get(port, "/"), BOOT, "uvicorn answering")
    assert "hello from the app" in page, page

    assert project.interrupt(server) == 0, server.output()  # uvicorn's status, passed on
    blocks.stop_and_check(project, data)
    code, gone = project.status_json(status, where)
    assert code == 4 and gone["supervisor"] is None
