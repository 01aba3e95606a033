"""One-shot tasks and depends_on conditions as declared (docs/declarations.md, "One-shot tasks"
and "depends_on"): what parses, and every refusal with its exact message."""

from __future__ import annotations

from typing import Any

import pytest

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Dependency

pytestmark = pytest.mark.unit

HEADER = "invalid daemon declarations in ATTACH_DAEMONS:"


def parse(decls: dict[str, Any]) -> dict[str, DaemonSpec]:
    return {s.name: s for s in parse_declarations(decls, base_dir="/srv/app")}


def problems(decls: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_declarations(decls, base_dir="/srv/app")
    lines = str(info.value).splitlines()
    assert lines[0] == HEADER
    return [line.removeprefix("  - ") for line in lines[1:]]


def test_oneshot__defaults_to_no_restart_and_round_trips_the_wire() -> None:
    specs = parse(
        {
            "migrate": {"command": ["true"], "oneshot": True},
            "web": {"command": ["sleep", "9"], "depends_on": {"migrate": "completed"}},
        }
    )
    migrate, web = specs["migrate"], specs["web"]
    assert migrate.oneshot and migrate.restart == "never" and not migrate.rerun_on_reload
    assert web.depends_on == ("migrate",)
    assert web.requirements() == (Dependency("migrate", "completed"),)
    assert DaemonSpec.from_wire(web.to_wire()) == web
    assert DaemonSpec.from_wire(migrate.to_wire()) == migrate


def test_oneshot__on_failure_and_rerun_on_reload_are_accepted() -> None:
    spec = parse(
        {"m": {"command": "true", "oneshot": True, "restart": "on-failure", "rerun_on_reload": True}}
    )["m"]
    assert spec.restart == "on-failure" and spec.rerun_on_reload


def test_depends_on__list_and_mapping_forms() -> None:
    specs = parse(
        {
            "redis": {"command": "redis-server"},
            "migrate": {"command": "true", "oneshot": True},
            "web": {
                "command": "gunicorn app",
                "depends_on": {
                    "redis": {"condition": "ready", "restart": True},
                    "migrate": {"condition": "completed"},
                },
            },
            "worker": {"command": "celery", "depends_on": ["redis", "migrate"]},
            "beat": {"command": "celery beat", "depends_on": {"worker": {"condition": "started"}}},
        }
    )
    assert specs["web"].requirements() == (
        Dependency("redis", "ready", restart=True),
        Dependency("migrate", "completed"),
    )
    assert specs["worker"].requirements() == (Dependency("redis"), Dependency("migrate"))
    assert specs["worker"].dependencies == ()  # bare names: nothing but the names is stored
    assert specs["beat"].requirements() == (Dependency("worker", "started"),)


BAD = [
    pytest.param(
        {"m": {"command": "true", "oneshot": True, "pidfile": "/run/m.pid"}},
        [
            "daemon 'm', key 'pidfile': not for a one-shot: a one-shot is attached: it runs in the "
            "foreground to completion (drop pidfile)"
        ],
        id="oneshot-pidfile",
    ),
    pytest.param(
        {"m": {"command": "true", "oneshot": True, "ready": {"tcp": "127.0.0.1:1"}, "control": True}},
        [
            "daemon 'm', key 'control': not for a one-shot: a one-shot ends by design; a control "
            "daemon's end shuts the server down (drop control)",
            "daemon 'm', key 'ready': not for a one-shot: a one-shot is done when it exits with "
            "status 0 (drop ready; dependents wait for it with condition 'completed')",
        ],
        id="oneshot-ready-control",
    ),
    pytest.param(
        {"m": {"command": "true", "oneshot": True, "restart": "always", "on_reload": "keep"}},
        [
            "daemon 'm', key 'on_reload': not for a one-shot: a one-shot is not restarted by a "
            "reload (use rerun_on_reload = true to run it again)",
            "daemon 'm', key 'restart': not 'always' for a one-shot: it would run again and again "
            "('never' (the default) runs it once; 'on-failure' runs it again after a failure)",
        ],
        id="oneshot-restart-always",
    ),
    pytest.param(
        {"m": {"command": "true", "oneshot": True, "schedule": "*/5 * * * *"}},
        [
            "daemon 'm', key 'schedule': not for a one-shot: a one-shot runs once per server start, a "
            "job on its schedule (drop one of them)"
        ],
        id="oneshot-schedule",
    ),
    pytest.param(
        {"m": {"command": "true", "rerun_on_reload": True}},
        ["daemon 'm', key 'rerun_on_reload': only applies with oneshot = true (add oneshot = true)"],
        id="rerun-without-oneshot",
    ),
    pytest.param(
        {"m": {"command": "true", "oneshot": "yes"}},
        [
            "daemon 'm', key 'oneshot': must be true or false, not the string 'yes' (use the boolean "
            "true, not a string)"
        ],
        id="oneshot-string",
    ),
    pytest.param(
        {
            "redis": {"command": "redis-server"},
            "web": {"command": "x", "depends_on": {"redis": "service_healthy"}},
        },
        [
            "daemon 'web', key 'depends_on': 'redis': unknown condition 'service_healthy' (docker compose's "
            "service_healthy is 'ready' here)"
        ],
        id="compose-condition",
    ),
    pytest.param(
        {"redis": {"command": "redis-server"}, "web": {"command": "x", "depends_on": {"redis": "redy"}}},
        ["daemon 'web', key 'depends_on': 'redis': unknown condition 'redy' (did you mean 'ready'?)"],
        id="condition-typo",
    ),
    pytest.param(
        {
            "redis": {"command": "redis-server"},
            "web": {"command": "x", "depends_on": {"redis": {"condition": "ready", "restrat": True}}},
        },
        ["daemon 'web', key 'depends_on': 'redis': unknown key 'restrat' (did you mean 'restart'?)"],
        id="entry-key-typo",
    ),
    pytest.param(
        {
            "redis": {"command": "redis-server"},
            "web": {"command": "x", "depends_on": {"redis": {"restart": "true"}}},
        },
        ["daemon 'web', key 'depends_on': 'redis': restart must be true or false, not 'true'"],
        id="restart-string",
    ),
    pytest.param(
        {"redis": {"command": "redis-server"}, "web": {"command": "x", "depends_on": {"redis": ["ready"]}}},
        [
            "daemon 'web', key 'depends_on': 'redis': must be a condition or a mapping, not ['ready'] "
            '(write {redis = {condition = "ready"}})'
        ],
        id="entry-list",
    ),
    pytest.param(
        {"redis": {"command": "redis-server"}, "web": {"command": "x", "depends_on": {"redis": "completed"}}},
        [
            "daemon 'web', key 'depends_on': 'redis' never completes (it is restarted always) (declare "
            "'redis' with oneshot = true, or use condition 'ready' or 'started')"
        ],
        id="completed-on-a-long-running-daemon",
    ),
    pytest.param(
        {
            "a": {"command": "x", "depends_on": {"b": {"condition": "ready", "restart": True}}},
            "b": {"command": "y", "depends_on": {"c": "started"}},
            "c": {"command": "z", "oneshot": True, "depends_on": ["a"]},
        },
        ["daemon 'a', key 'depends_on': dependency cycle a -> b -> c -> a"],
        id="cycle-with-the-mapping-form",
    ),
    pytest.param(
        {"web": {"command": "x", "depends_on": {"redsi": {"restart": True}}}, "redis": {"command": "r"}},
        ["daemon 'web', key 'depends_on': unknown daemon 'redsi' (did you mean 'redis'?)"],
        id="unknown-in-mapping",
    ),
]


@pytest.mark.parametrize(("decls", "expected"), BAD)
def test_bad_oneshot_and_dependency_input_gets_its_exact_message(
    decls: dict[str, Any], expected: list[str]
) -> None:
    assert problems(decls) == expected


# healthchecks/healthchecks, docker/uwsgi.ini (commit 08849d6f22342f6101c3fa9b3524fe8bf156aa39):
# the migration runs before the app loads, and uWSGI's master starts the daemons after it.
HEALTHCHECKS = [
    "hook-pre-app = exec:./manage.py migrate",
    "attach-daemon = ./manage.py sendalerts",
    "attach-daemon = ./manage.py sendreports --loop",
]


def test_hook_pre_app_exec_is_a_one_shot_the_lines_daemons_wait_for() -> None:
    migrate, alerts, reports = parse_declarations(HEALTHCHECKS, base_dir="/opt/healthchecks")
    assert (migrate.name, migrate.command, migrate.oneshot) == (
        "manage.py",
        ("/opt/healthchecks/manage.py", "migrate"),
        True,
    )
    assert migrate.restart == "never" and not alerts.oneshot and not reports.oneshot
    assert alerts.requirements() == reports.requirements() == (Dependency("manage.py", "completed"),)


def test_exec_pre_app_and_native_declarations_beside_hook_lines() -> None:
    specs = parse(
        {
            "static": "exec-pre-app = python3 manage.py collectstatic --noinput",
            "env": "hook-pre-app = exec:FLASK_APP=uffd flask db upgrade",
            "web": {"command": "gunicorn app", "depends_on": {"static": "completed"}},
        }
    )
    assert specs["static"].oneshot and specs["static"].command[1:] == (
        "manage.py",
        "collectstatic",
        "--noinput",
    )
    assert specs["env"].oneshot and specs["env"].command == (
        "/bin/sh",
        "-c",
        "FLASK_APP=uffd exec flask db upgrade",
    )
    assert specs["web"].requirements() == (Dependency("static", "completed"),)  # nothing added


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "hook-pre-app = chdir:/srv",
            "uWSGI line 'hook-pre-app = chdir:/srv': hook action 'chdir:' is uWSGI's own (not a "
            "command to run) (only exec: runs a command; do the rest in the app's own start-up code)",
        ),
        (
            "hook-pre-app = ./manage.py migrate",
            "uWSGI line 'hook-pre-app = ./manage.py migrate': a hook is ACTION:ARGUMENTS (write "
            "'hook-pre-app = exec:CMD')",
        ),
        ("hook-pre-app = exec:  ", "uWSGI line 'hook-pre-app = exec:  ': hook-pre-app exec: needs a command"),
    ],
)
def test_hook_lines_that_are_not_exec_are_refused(line: str, expected: str) -> None:
    assert problems([line]) == [expected]
