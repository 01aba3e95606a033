"""A leader backend whose client package is missing (redis-py, psycopg): every host refuses
before anything starts, naming each daemon, its key and the extra to install, all at once.

The packages are installed in the test venv; each server here runs with an import blocker
(tests/helpers/import_blocker.py) first on its PYTHONPATH, so for it they are really missing.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.harness import wait_for
from tests.helpers.hosts import Host, free_port, no_supervisor
from tests.helpers.import_blocker import assert_missing_clients_named, blocker_dir, pythonpath_with


def without_clients(h: Host) -> dict[str, str]:
    """The environment of a host whose declarations have a redis and a PostgreSQL leader daemon,
    on a machine without redis-py and psycopg."""
    blocker = blocker_dir(h.box.tmp / "blocker", "redis", "psycopg")
    return {"AD_LEADERS": "1", "PYTHONPATH": pythonpath_with(blocker, h.env.get("PYTHONPATH"))}


def nothing_started(h: Host) -> bool:
    return no_supervisor(h.box.runtime_dir) and not h.supervisors() and h.box.events.lines() == []


def test_manage_check__each_missing_client_an_error_with_its_id(host: Callable[..., Host]) -> None:
    h = host("djsite")
    result = h.run([h.python, "manage.py", "check"], **without_clients(h))
    assert result.returncode != 0, result.stdout + result.stderr
    assert_missing_clients_named(result.stderr)
    for daemon in ("beat", "pgbeat"):
        assert f"(attachdaemon.E003) daemon {daemon!r}, key 'leader': " in result.stderr, result.stderr
    assert nothing_started(h)


def test_runserver__refuses_to_start_the_daemons(host: Callable[..., Host]) -> None:
    h = host("djsite")
    s = h.start([h.python, "manage.py", "runserver", f"127.0.0.1:{free_port()}"], "runserver",
                **without_clients(h))  # fmt: skip
    wait_for(lambda: "not starting the daemons" in s.output(), 30, "runserver's refusal")
    assert_missing_clients_named(s.output())
    assert nothing_started(h)


def test_gunicorn_django__refuses_to_start(host: Callable[..., Host]) -> None:
    h = host("djsite")
    g = h.gunicorn(free_port(), **without_clients(h))
    assert g.wait_exit(30) != 0, g.output()
    assert "refusing to start" in g.output()
    assert_missing_clients_named(g.output())
    assert nothing_started(h)


def test_gunicorn_plain__refuses_to_start(host: Callable[..., Host]) -> None:
    h = host("plain")
    g = h.gunicorn(free_port(), **without_clients(h))
    assert g.wait_exit(30) != 0, g.output()
    assert "refusing to start" in g.output()
    assert_missing_clients_named(g.output())
    assert nothing_started(h)


def test_flask_init_app__raises_naming_every_problem(host: Callable[..., Host]) -> None:
    h = host("flaskapp")
    result = h.run([h.python, "-c", "import app"], **without_clients(h))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ConfigError" in result.stderr
    assert_missing_clients_named(result.stderr)
    assert nothing_started(h)
