"""Django settings and system checks, in-process: exact check messages, cache cleared on change."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.test.utils import override_settings

from attachdaemon_django import conf
from attachdaemon_django.checks import check_declarations

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "ini"


def test_checks__bad_declarations__every_problem_with_its_id_and_exact_message() -> None:
    bad = {"x": {"comand": "sleep 1"}, "y": {"command": "sleep 1", "stop_signal": "SIGNOPE"}}
    with override_settings(ATTACH_DAEMONS=bad, ATTACH_DAEMONS_AUTOSTART="yes"):
        found = check_declarations()
    assert all(isinstance(m, checks.Error) for m in found)
    assert all(m.id is not None and m.id.startswith("attachdaemon.E") for m in found)
    texts = [(m.obj, m.msg) for m in found]
    assert (
        "settings.ATTACH_DAEMONS_AUTOSTART",
        "key 'ATTACH_DAEMONS_AUTOSTART': must be True or False, not 'yes'",
    ) in texts
    assert any(
        obj == "settings.ATTACH_DAEMONS" and msg.startswith("daemon 'x', key 'comand': ")
        for obj, msg in texts
    )
    assert any(msg.startswith("daemon 'y', key 'stop_signal': ") and "SIGNOPE" in msg for _, msg in texts)


def test_checks__settings_changed__cache_cleared() -> None:
    with override_settings(ATTACH_DAEMONS={"a": {"command": [sys.executable, "-c", "pass"]}}):
        assert check_declarations() == []
        assert [s.name for s in conf.specs()] == ["a"]
        with override_settings(ATTACH_DAEMONS={"b": {"command": "no-such-program-xyz"}}):
            found = check_declarations()
            assert [(m.id, m.msg.split(":")[0]) for m in found] == [
                ("attachdaemon.W001", "daemon 'b', key 'command'")
            ]
        assert [s.name for s in conf.specs()] == ["a"]


def test_conf__relative_paths_against_base_dir() -> None:
    with override_settings(ATTACH_DAEMONS={"a": {"command": "sleep 1", "cwd": "var"}}):
        assert conf.specs()[0].cwd == "/srv/site/var"


def test_environment__django_set_tz_is_not_passed_to_daemons(monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(TIME_ZONE="America/Chicago"):
        monkeypatch.setenv("TZ", "America/Chicago")  # what Django's settings loading does
        assert "TZ" not in conf.environment()
        monkeypatch.setenv("TZ", "Europe/Paris")  # the operator's own choice stays
        assert conf.environment()["TZ"] == "Europe/Paris"


def test_leader_django_alias__resolved_into_a_direct_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    databases = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "app",
            "USER": "web",
            "PASSWORD": "s3 cret",
            "HOST": "db.internal",
            "PORT": "5433",
            "OPTIONS": {"sslmode": "require", "pool": True},
        },
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.db"},
    }
    decl = {"beat": {"command": "sleep 1", "leader": {"lock": "beat", "backend": "django:default"}}}
    monkeypatch.setattr(settings, "DATABASES", databases)  # override_settings warns for DATABASES
    with override_settings(ATTACH_DAEMONS=decl):
        (spec,) = conf.specs()
    assert spec.leader is not None
    assert (
        spec.leader.backend
        == "dbname=app user=web password='s3 cret' host=db.internal port=5433 sslmode=require"
    )
    decl["beat"]["leader"]["backend"] = "django:other"  # type: ignore[index]
    with override_settings(ATTACH_DAEMONS=decl):
        found = check_declarations()
    assert [m.msg for m in found] == [
        "daemon 'beat', key 'leader': DATABASES['other'] is not PostgreSQL; use postgresql://… or redis://…"
    ]


@pytest.mark.parametrize(
    ("setting", "variable", "starts"),
    [(True, None, True), (True, "0", False), (False, "1", True), (False, None, False), (True, "off", False)],
)
def test_autostart__the_environment_variable_wins_over_the_setting(
    monkeypatch: pytest.MonkeyPatch, setting: bool, variable: str | None, starts: bool
) -> None:
    """A process that is no management command (a server, a test runner) starts the daemons per
    ``ATTACH_DAEMONS_AUTOSTART``; the environment variable of that name wins (``0`` turns it off
    for a test run). Whether pytest is loaded plays no part."""
    from attachdaemon_django import startup

    monkeypatch.setattr(sys, "argv", ["server.py"])
    if variable is None:
        monkeypatch.delenv("ATTACH_DAEMONS_AUTOSTART", raising=False)
    else:
        monkeypatch.setenv("ATTACH_DAEMONS_AUTOSTART", variable)
    with override_settings(ATTACH_DAEMONS_AUTOSTART=setting):
        assert startup.should_start() is starts


def test_attach_daemons_names_a_uwsgi_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ATTACH_DAEMONS = "uwsgi.ini" (docs/uwsgi-files.md): relative to BASE_DIR; the checks show
    uWSGI's keys ignored (W007) once, and its cron line is a job, not a W008."""
    ini = tmp_path / "uwsgi.ini"
    shutil.copyfile(CORPUS / "uwsgi.it-postgresql-backup.ini", ini)
    (tmp_path / "x").mkdir()
    ini.write_text(ini.read_text() + "socket = :3031\n")
    monkeypatch.setenv("HOME", str(tmp_path / "x"))
    with override_settings(ATTACH_DAEMONS="uwsgi.ini", BASE_DIR=tmp_path):
        spec, job = conf.specs()
        assert job.schedule == "59 3 * * *"
        assert spec.pidfile == f"{tmp_path}/x/db.pg/postmaster.pid" and dict(spec.env) == {
            "PGPASSWORD": "XXX"
        }
        ids = [m.id for m in check_declarations()]
        assert ids.count("attachdaemon.W007") == 1 and ids.count("attachdaemon.W008") == 0
