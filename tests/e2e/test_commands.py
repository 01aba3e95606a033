"""Management commands and ``flask`` commands: which start nothing, and the ``daemons`` verbs."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, free_port, no_supervisor
from tests.helpers.status_json import check_status_json


@pytest.mark.parametrize(
    ("fixture", "argv"),
    [
        ("djsite", ["manage.py", "migrate"]),
        ("djsite", ["manage.py", "shell", "-c", "print('hello')"]),
        ("djsite", ["manage.py", "check"]),
        ("djsite", ["manage.py", "daemons", "check"]),
        ("flaskapp", ["-m", "flask", "--app", "app", "routes"]),
    ],
)
def test_other_commands__start_nothing(host: Callable[..., Host], fixture: str, argv: list[str]) -> None:
    h = host(fixture)
    result = h.run([h.python, *argv])
    assert result.returncode == 0, result.stdout + result.stderr
    assert no_supervisor(h.box.runtime_dir) and not h.supervisors()
    assert h.box.events.lines() == []


def test_manage_check__bad_declarations__each_problem_with_its_id(host: Callable[..., Host]) -> None:
    h = host("djsite")
    result = h.run([h.python, "manage.py", "check"], AD_BAD="1")
    assert result.returncode != 0
    err = result.stderr
    assert "settings.ATTACH_DAEMONS: (attachdaemon.E001) daemon 'bad', key 'comand': " in err, err
    assert "settings.ATTACH_DAEMONS: (attachdaemon.E001) daemon 'bad', key 'stop_signal': " in err, err
    assert "SIGNOPE" in err
    assert no_supervisor(h.box.runtime_dir) and h.box.events.lines() == []


@pytest.mark.parametrize(
    ("fixture", "cli"),
    [("djsite", ["manage.py", "daemons"]), ("flaskapp", ["-m", "flask", "--app", "app", "daemons"])],
)
def test_daemons_verbs__second_process__find_the_gunicorn_supervisor_by_key(
    host: Callable[..., Host], fixture: str, cli: list[str]
) -> None:
    h = host(fixture)
    del h.env["ATTACH_DAEMONS_RUNTIME_DIR"]  # the key alone must lead both processes to one supervisor

    def daemons(*args: str) -> Any:
        return h.run([h.python, *cli, *args])

    none = daemons("status")
    assert none.returncode == 4, none.stdout + none.stderr
    assert "no supervisor answered within 2s in " in none.stderr

    g = h.gunicorn(free_port())
    try:
        status = wait_for(lambda: (r := daemons("status", "--json")).returncode == 0 and r, 30, "status 0")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{g.output()}") from None
    data = json.loads(status.stdout)
    h.box.runtime_dir = data["supervisor"]["runtime_dir"]  # for the sandbox's teardown
    check_status_json(data)
    assert data["supervisor"]["owners"] == [g.pid]
    assert {d["name"] for d in data["daemons"]} == {"a", "s"}

    a = h.box.running("a")
    stopped = daemons("stop", "a")
    assert stopped.returncode == 0 and stopped.stdout == "stop: a\n", stopped.stdout + stopped.stderr
    assert a is not None and not alive(a)
    table = daemons("status")
    assert table.returncode == 0 and "stopped (by command)" in table.stdout, table.stdout
    assert daemons("start", "a").returncode == 0
    b = wait_for(lambda: h.box.running("a"), 5, "a started again")
    assert daemons("restart", "a").returncode == 0
    wait_for(lambda: h.box.running("a") not in (None, b), 5, "a restarted")
    logs = daemons("logs", "s", "-n", "5")
    assert logs.returncode == 0, logs.stderr

    g.signal(signal.SIGTERM)
    g.wait_exit(20)
    wait_for(lambda: no_supervisor(h.box.runtime_dir), 10, "supervisor exit")
    assert daemons("status", "--json").returncode == 4


def test_daemons_status__a_daemon_failed__exit_3(host: Callable[..., Host]) -> None:
    h = host("djsite")
    g = h.gunicorn(free_port(), AD_CRASHY="1")
    wait_for(lambda: h.box.daemon("c")["state"] == "fatal", 30, f"c fatal\n{g.output()}")
    result = h.run([h.python, "manage.py", "daemons", "status"], AD_CRASHY="1")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "fatal" in result.stdout


@pytest.mark.parametrize(
    ("fixture", "cli"),
    [("djsite", ["manage.py", "daemons"]), ("flaskapp", ["-m", "flask", "--app", "app", "daemons"])],
)
def test_daemons_status_json__no_supervisor__one_json_object_exit_4(
    host: Callable[..., Host], fixture: str, cli: list[str]
) -> None:
    h = host(fixture)
    result = h.run([h.python, *cli, "status", "--json"])
    assert result.returncode == 4, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["supervisor"] is None and data["runtime_dir"] == h.box.runtime_dir, data
    assert f"no supervisor answered within 2s in {h.box.runtime_dir}" in data["error"], data


def test_manage_daemons__django_options_after_the_verb(host: Callable[..., Host]) -> None:
    h = host("djsite")
    result = h.run([h.python, "manage.py", "daemons", "status", "--json", "--settings", "djsite.settings",
                    "--traceback", "--no-color", "-v", "0"])  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert json.loads(result.stdout)["supervisor"] is None
    check = h.run([h.python, "manage.py", "daemons", "check", "--verbosity", "2", "--pythonpath", "."])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "2 daemon(s) declared in settings.ATTACH_DAEMONS: OK" in check.stdout
