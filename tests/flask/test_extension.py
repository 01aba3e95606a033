"""The Flask extension, in-process: validation at init_app, config defaults, several apps."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from attachdaemon_core.spec.model import ConfigError
from attachdaemon_flask import AttachDaemons
from attachdaemon_flask.extension import state_of
from tests.helpers.harness import Sandbox


def _app(name: str, **config: object) -> Flask:
    app = Flask(name, root_path=f"/srv/{name}")
    app.config.update(config)
    return app


def test_init_app__bad_declarations__config_error_with_every_problem() -> None:
    app = _app("bad", ATTACH_DAEMONS={"x": {"comand": "sleep 1"}}, ATTACH_DAEMONS_WAIT_READY=-1)
    with pytest.raises(ConfigError) as caught:
        AttachDaemons(app)
    text = str(caught.value)
    assert "daemon 'x', key 'comand'" in text and "key 'ATTACH_DAEMONS_WAIT_READY'" in text
    assert "attachdaemon" not in app.extensions


def test_init_app__factory_and_several_apps__state_per_app_defaults_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ATTACH_DAEMONS_RUNTIME_DIR", raising=False)
    ext = AttachDaemons()
    one = _app("one", ATTACH_DAEMONS={"a": {"command": "sleep 1", "cwd": "run"}})
    two = _app("two")
    ext.init_app(one)
    ext.init_app(two)
    assert one.config["ATTACH_DAEMONS_AUTOSTART"] is False and two.config["ATTACH_DAEMONS_WAIT_READY"] == 0
    s1, s2 = state_of(one), state_of(two)
    assert [s.name for s in s1.declared.specs] == ["a"] and s2.declared.specs == ()
    assert s1.declared.specs[0].cwd == "/srv/one/run"
    assert s1.declared.key == "flask:one:/srv/one"
    assert s1.runtime_dir != s2.runtime_dir
    assert not s1.started and "daemons" in one.cli.commands


def test_flask_daemons_status__no_supervisor__exit_4(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTACH_DAEMONS_RUNTIME_DIR", "/tmp/attachdaemon-test-none")
    app = _app("three")
    AttachDaemons(app)
    result = app.test_cli_runner().invoke(args=["daemons", "status"])
    assert result.exit_code == 4
    assert "no supervisor answered within 2s in /tmp/attachdaemon-test-none" in result.output


def test_status_blueprint__json_for_allowed_403_otherwise(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attachdaemon_core.spec.model import DaemonSpec
    from attachdaemon_flask.views import status_blueprint
    from tests.helpers.harness import wait_for

    monkeypatch.setenv("ATTACH_DAEMONS_RUNTIME_DIR", sandbox.runtime_dir)
    sandbox.join(sandbox.owner(), [DaemonSpec(name="kv", command=("sleep", "1000"))])
    wait_for(lambda: sandbox.running("kv"), 5, "kv")
    allowed = {"yes": True}
    app = _app("bp")
    AttachDaemons(app)
    app.register_blueprint(status_blueprint(allow=lambda: allowed["yes"]), url_prefix="/daemons")
    client = app.test_client()
    response = client.get("/daemons/status.json")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert data["supervisor"]["runtime_dir"] == sandbox.runtime_dir
    assert [(d["name"], d["state"]) for d in data["daemons"]] == [("kv", "running")]
    assert client.get("/daemons/").status_code == 200
    allowed["yes"] = False
    assert client.get("/daemons/status.json").status_code == 403


def test_autostart__environment_variable_0_wins_over_the_config_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that loads an app with ``ATTACH_DAEMONS_AUTOSTART = True`` (a test run of it)
    starts nothing when ``ATTACH_DAEMONS_AUTOSTART=0`` is in the environment."""
    monkeypatch.setenv("ATTACH_DAEMONS_AUTOSTART", "0")
    monkeypatch.setenv("ATTACH_DAEMONS_RUNTIME_DIR", "/dev/null/attachdaemon-autostart-test")
    app = _app("opted", ATTACH_DAEMONS={"a": {"command": "sleep 1"}}, ATTACH_DAEMONS_AUTOSTART=True)
    AttachDaemons(app)
    assert state_of(app).autostart is True and state_of(app).started is False


def test_autostart__bad_environment_variable__nothing_started_and_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATTACH_DAEMONS_AUTOSTART", "maybe")
    monkeypatch.setenv("ATTACH_DAEMONS_RUNTIME_DIR", "/dev/null/attachdaemon-autostart-test")
    app = _app("opted2", ATTACH_DAEMONS={"a": {"command": "sleep 1"}}, ATTACH_DAEMONS_AUTOSTART=True)
    AttachDaemons(app)
    assert state_of(app).started is False
    assert "ATTACH_DAEMONS_AUTOSTART='maybe' is not one of" in capsys.readouterr().err


def test_init_app__attach_daemons_names_a_uwsgi_ini(tmp_path: Path) -> None:
    """ATTACH_DAEMONS = "uwsgi.ini" (docs/uwsgi-files.md), relative to the app's root_path."""
    shutil.copyfile(
        Path(__file__).resolve().parent.parent / "corpus" / "ini" / "tcs-uwsgi-redis.ini",
        tmp_path / "uwsgi.ini",
    )
    app = Flask("ini", root_path=str(tmp_path))
    app.config.update(ATTACH_DAEMONS="uwsgi.ini")
    AttachDaemons(app)
    (spec,) = state_of(app).declared.specs
    assert spec.pidfile == f"{tmp_path}/redis.pid" and spec.command[0].endswith("redis-server")
