"""`attachdaemon migrate` on the corpus's real uWSGI files (tests/corpus/ini/SOURCES.md;
docs/migrate.md): the gunicorn settings written, the daemons file parsing back to the very specs
the uWSGI file gives, and the options listed as not translated with their reasons.

Booting the written gunicorn.conf.py under real gunicorn is tests/e2e/test_migrate_gunicorn.py.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.hosts.migrate_cli import main
from attachdaemon_core.spec.config_file import load_toml
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.migrate import Migration, migrate
from attachdaemon_core.spec.migrate_daemons import same_specs
from attachdaemon_core.spec.model import ConfigError, DaemonSpec

pytestmark = pytest.mark.unit  # files only: no process

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "ini"
DISPATCHARR_ENV = {
    "REDIS_IDLE_TIMEOUT": "60",
    "CELERY_NICE_LEVEL": "5",
    "CELERY_MAX_WORKERS": "4",
    "CELERY_MIN_WORKERS": "1",
    "UWSGI_WORKERS": "3",
    "CELERY_BANNER": "--quiet",
}


def run_migrate(tmp_path: Path, name: str, fmt: str = "toml", section: str = "") -> Migration:
    shutil.copy(CORPUS / name, tmp_path / name)
    return migrate(name + section, str(tmp_path), fmt)


def settings(m: Migration) -> dict[str, Any]:
    return {name: s.value for name, s in m.translation.settings.items()}


def untranslated(m: Migration) -> dict[str, tuple[int, ...]]:
    return {u.key: u.lines for u in m.translation.untranslated}


def toml_round_trip(m: Migration, tmp_path: Path) -> tuple[DaemonSpec, ...]:
    """The daemons file read the way `attachdaemon --config` and attach_daemons read it."""
    out = tmp_path / "deploy"
    out.mkdir(exist_ok=True)
    (out / "daemons.toml").write_text(m.daemons)
    again = load_toml(str(out / "daemons.toml")).specs
    assert same_specs(m.specs, again) == []
    assert [s.name for s in again] == [s.name for s in m.specs]
    return again


def python_round_trip(m: Migration, tmp_path: Path) -> tuple[DaemonSpec, ...]:
    """The ATTACH_DAEMONS snippet executed as settings are, then read as a host reads it."""
    namespace: dict[str, Any] = {}
    exec(compile(m.daemons, "settings.py", "exec"), namespace)
    again = parse_declarations(namespace["ATTACH_DAEMONS"], base_dir=str(tmp_path / "elsewhere"))
    assert same_specs(m.specs, again) == []
    return again


def test_healthchecks_settings_one_shot_and_daemons(tmp_path: Path) -> None:
    m = run_migrate(tmp_path, "healthchecks-docker-uwsgi.ini")
    assert settings(m) == {
        "bind": ["0.0.0.0:8000"],  # http-socket = :8000: every interface, as uWSGI binds it
        "timeout": 10,
        "workers": 4,
        "threads": 1,
        "chdir": "/opt/healthchecks",
        "wsgi_app": "hc.wsgi:application",
    }
    assert list(untranslated(m)) == [
        "master",
        "post-buffering",
        "enable-threads",
        "thunder-lock",
        "disable-write-exception",
        "max-fd",
    ]
    assert untranslated(m)["master"] == (2,)
    again = toml_round_trip(m, tmp_path)
    assert [s.oneshot for s in again] == [True, False, False]  # hook-pre-app = exec:./manage.py migrate
    assert [d.condition for d in again[1].requirements()] == ["completed"]
    assert "die-on-term (line 3): SIGTERM is a graceful shutdown" in m.gunicorn_conf
    assert "`master` (line 2): gunicorn always runs a master process" in m.notes


def test_cla_backend_cron2_jobs_as_django_settings(tmp_path: Path) -> None:
    m = run_migrate(tmp_path, "cla_backend-docker.ini", "django")
    values = settings(m)
    assert values["bind"] == ["unix:/tmp/backend.sock"]
    assert "uwsgi protocol" in m.translation.settings["bind"].note  # socket =: not HTTP
    assert (values["user"], values["group"]) == ("www-data", "www-data")
    assert values["raw_env"] == ["DJANGO_SETTINGS_MODULE=cla_backend.settings"]
    assert (values["workers"], values["timeout"]) == (2, 20)
    assert "from attachdaemon_django.gunicorn import *" in m.gunicorn_conf
    assert "attach_daemons =" not in m.gunicorn_conf  # Django reads ATTACH_DAEMONS from its settings
    again = python_round_trip(m, tmp_path)
    assert [(s.schedule, s.unique, s.timeout) for s in again] == [
        ("0 5 * * *", True, None),
        ("15 2 * * *", True, 30.0),
        ("*/15 * * * *", True, 30.0),
    ]
    assert {"buffer-size", "plugins", "chmod-socket", "vhost"} <= set(untranslated(m))
    assert "limit_request_line" in m.notes


def test_cla_backend_heroku_port_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "5123")
    m = run_migrate(tmp_path, "cla_backend-heroku.ini")
    assert settings(m)["bind"] == ["0.0.0.0:5123"]
    assert settings(m)["wsgi_app"] == "cla_backend.wsgi:application"
    assert m.specs == ()
    assert "attach_daemons" not in m.gunicorn_conf and "import *" not in m.gunicorn_conf


def test_uffd_flask_one_shot_through_a_shell(tmp_path: Path) -> None:
    m = run_migrate(tmp_path, "uffd-readme.ini", "flask")
    values = settings(m)
    assert values["wsgi_app"] == "uffd:create_app()"  # gunicorn calls an app factory the same way
    assert values["raw_env"] == ["PYTHONIOENCODING=UTF-8", "LANG=en_GB.utf8", "TZ=Europe/Berlin"]
    assert (values["user"], values["group"]) == ("uffd", "uffd")
    again = python_round_trip(m, tmp_path)
    assert again[0].command == ("/bin/sh", "-c", "FLASK_APP=uffd exec flask db upgrade")
    assert again[0].oneshot and dict(again[0].env)["TZ"] == "Europe/Berlin"
    assert "from attachdaemon_flask.gunicorn import *" in m.gunicorn_conf
    assert "run through a shell" in m.notes.lower()
    assert set(untranslated(m)) == {"plugin", "manage-script-name", "vacuum"}


@pytest.mark.parametrize(
    ("section", "bind", "daemons"),
    [(":celery", ["[::]:5000"], ["celery"]), (":web", ["[::]:5000", "[::]:8080"], [])],
)
def test_kitchenowl_sections_wsgi_file_and_callable(
    tmp_path: Path, section: str, bind: list[str], daemons: list[str]
) -> None:
    m = run_migrate(tmp_path, "kitchenowl-wsgi.ini", section=section)
    assert settings(m)["wsgi_app"] == "wsgi:app"  # wsgi-file = wsgi.py, callable = app
    assert settings(m)["bind"] == bind
    assert settings(m)["proc_name"] == "kitchenowl"
    assert [s.name for s in toml_round_trip(m, tmp_path)] == daemons
    assert "preload_app = False" in dict((u.key, u.reason) for u in m.translation.untranslated)["lazy-apps"]
    if section == ":web":
        assert "WhiteNoise" in dict((u.key, u.reason) for u in m.translation.untranslated)["static-map"]


def test_dispatcharr_placeholders_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DISPATCHARR_ENV.items():
        monkeypatch.setenv(name, value)
    m = run_migrate(tmp_path, "dispatcharr-uwsgi.ini")
    values = settings(m)
    assert values["workers"] == 3  # workers = $(UWSGI_WORKERS)
    assert values["bind"] == ["unix:/app/uwsgi.sock", "0.0.0.0:5656"]
    assert values["raw_env"] == ["DJANGO_SETTINGS_MODULE=dispatcharr.settings", "USE_NGINX_ACCEL=true"]
    again = toml_round_trip(m, tmp_path)
    assert [s.name for s in again] == ["redis-server", "nice", "nice-2", "nice-3", "daphne"]
    assert again[1].command[-1] == "--autoscale=4,1"
    assert dict(again[0].env) == {"DJANGO_SETTINGS_MODULE": "dispatcharr.settings", "USE_NGINX_ACCEL": "true"}
    left = untranslated(m)
    assert {"virtualenv", "gevent", "static-map", "log-format", "exec-pre", "http-timeout"} <= set(left)
    assert "log-format" in left and "ftime" not in left  # %(ftime) is uWSGI's log atom, no option


def test_postgresql_backup_smart_daemon_and_shell_cron(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    m = run_migrate(tmp_path, "uwsgi.it-postgresql-backup.ini")
    again = toml_round_trip(m, tmp_path)
    postgres, dump = again
    assert postgres.pidfile == f"{tmp_path}/home/db.pg/postmaster.pid" and postgres.on_reload == "keep"
    assert dump.schedule == "59 3 * * *" and dump.command[:2] == ("/bin/sh", "-c")
    assert "on_reload" not in m.daemons and "log =" not in m.daemons  # their kinds' defaults
    assert settings(m) == {"raw_env": ["PGPASSWORD=XXX"]}  # env: for gunicorn and the daemons
    assert untranslated(m) == {}  # pg is the file's own placeholder; env went to the daemons


def test_cli_prints_writes_and_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(CORPUS / "healthchecks-docker-uwsgi.ini", tmp_path / "uwsgi.ini")
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert main(["uwsgi.ini"], out, err) == 0
    for name in ("gunicorn.conf.py", "daemons.toml", "MIGRATION.md"):
        assert f"# ==> {name} <==" in out.getvalue()
    assert main(["uwsgi.ini", "-o", "deploy"], out, err) == 0
    assert sorted(os.listdir("deploy")) == ["MIGRATION.md", "daemons.toml", "gunicorn.conf.py"]
    namespace: dict[str, Any] = {"__file__": str(tmp_path / "deploy" / "gunicorn.conf.py")}
    exec(
        compile((tmp_path / "deploy" / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace
    )
    assert namespace["attach_daemons"] == str(tmp_path / "deploy" / "daemons.toml")
    assert namespace["workers"] == 4 and callable(namespace["on_starting"])
    err = io.StringIO()
    assert main(["uwsgi.ini", "-o", "deploy"], out, err) == 1
    assert "already in deploy (add --force to replace)" in err.getvalue()
    assert main(["uwsgi.ini", "-o", "deploy", "--force"], out, io.StringIO()) == 0


def test_invalid_daemon_lines_stop_the_migration_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(CORPUS / "dispatcharr-uwsgi.dev.ini", tmp_path / "uwsgi.ini")
    with monkeypatch.context() as env:
        for name, value in DISPATCHARR_ENV.items():
            env.setenv(name, value)
        with pytest.raises(ConfigError) as caught:
            migrate("uwsgi.ini", str(tmp_path))
        assert "cd /app/frontend && npm run dev" in str(caught.value)  # the one line left wrong
        assert "cannot be resolved" not in str(caught.value)
    for name in DISPATCHARR_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    assert main(["uwsgi.ini"], io.StringIO(), err) == 1
    assert "line 11: $(REDIS_IDLE_TIMEOUT) cannot be resolved" in err.getvalue()
    assert "run migrate again" in err.getvalue()


def test_an_unresolved_placeholder_in_a_server_option_is_listed_not_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PORT", raising=False)
    m = run_migrate(tmp_path, "cla_backend-heroku.ini")  # http-socket = :$(PORT)
    assert "bind" not in settings(m)
    reason = {u.key: u.reason for u in m.translation.untranslated}["http-socket"]
    assert reason.startswith("$(PORT) cannot be resolved here")


def test_same_specs_names_what_differs() -> None:
    first = parse_declarations({"a": {"command": "sleep 1", "stop_signal": "SIGINT"}})
    second = parse_declarations({"a": {"command": "sleep 1"}})
    assert same_specs(first, second) == ["a: stop_signal"]
    assert same_specs(first, first) == []
    assert same_specs(first, parse_declarations({"b": {"command": "sleep 1"}}))[0].startswith("names differ")


def test_the_attachdaemon_script_runs_migrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attachdaemon_core.hosts.cli import main as cli_main

    shutil.copy(CORPUS / "uffd-readme.ini", tmp_path / "uwsgi.ini")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["migrate", "uwsgi.ini", "--format", "django", "-o", "out"]) == 0
    assert (tmp_path / "out" / "attach_daemons_settings.py").read_text().count("'oneshot': True") == 1
