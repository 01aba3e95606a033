"""uWSGI config files read directly (docs/uwsgi-files.md): what becomes a daemon, what the daemons
get (env, chdir), what check says of the rest, and errors that name the line.

Values are checked against uWSGI itself in tests/corpus/test_uwsgi_files_oracle.py; here, the
declarations made from them, on the corpus's real files (tests/corpus/ini/SOURCES.md).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from attachdaemon_core.hosts.commands import Context, check
from attachdaemon_core.spec.checks import check_specs
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError
from attachdaemon_core.spec.placeholders import magic_table
from attachdaemon_core.spec.uwsgi_config import read_file
from attachdaemon_core.spec.uwsgi_file import is_uwsgi_file, split_section

pytestmark = pytest.mark.unit  # files only: no process

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "ini"


def corpus_copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(CORPUS / name, target)
    return target


def test_magic_variables_of_a_file(tmp_path: Path) -> None:
    where = tmp_path / "srv" / "site"
    where.mkdir(parents=True)
    path = where / "uwsgi.ini"
    path.write_text("[web]\n")
    table = magic_table(str(path), "web")
    parts = [p for p in str(where).split("/") if p]
    assert table["d"] == f"{where}/"  # uWSGI keeps the trailing slash
    assert (table["n"], table["s"], table["e"], table["p"]) == ("uwsgi", "uwsgi.ini", "ini", str(path))
    assert (table["x"], table["c"], table["0"], table["1"]) == ("web", "site", parts[0], parts[1])
    assert table["k"] == str(os.cpu_count())
    assert table["D"] == table["d"]  # the first file's values


def test_section_selection_and_suffixes() -> None:
    assert split_section("app.ini:celery") == ("app.ini", "celery")
    assert split_section(":uwsgi") == ("", "uwsgi")
    assert split_section("/srv/a:b/app.ini") == ("/srv/a:b/app.ini", "")
    assert all(is_uwsgi_file(p) for p in ("uwsgi.ini", "a.yaml:x", "a.yml", "a.json", "A.INI"))
    assert not any(is_uwsgi_file(p) for p in ("attachdaemon.toml", "memcached -p 11211", "uwsgi.conf"))


def test_repeated_keys_and_the_first_value_for_references(tmp_path: Path) -> None:
    path = tmp_path / "app.ini"
    path.write_text(
        "[uwsgi]\nbase = %d\nbase = /other\nattach-daemon = %(base)run a\nattach-daemon = %(base)run b\n"
    )
    found = read_file(str(path), str(tmp_path))
    assert found.lines == [f"attach-daemon = {tmp_path}/run a", f"attach-daemon = {tmp_path}/run b"]


def test_an_unresolvable_placeholder_is_an_error_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    path = tmp_path / "app.ini"
    path.write_text(
        "[uwsgi]\nsocket = $(NOT_SET_HERE)\n"  # not ours: uWSGI leaves it, so do we
        "attach-daemon = worker --port $(NOT_SET_HERE)\n"
        "attach-daemon = worker %(nope)\n"
        "attach-daemon = date +%Y\n"
        "smart-attach-daemon = @(/no/such/file) x\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_declarations(str(path), base_dir=str(tmp_path))
    text = str(caught.value)
    assert f"{path}, line 3: $(NOT_SET_HERE) cannot be resolved" in text
    assert f"{path}, line 4: %(nope) cannot be resolved" in text
    assert f"{path}, line 5: %Y has no value" in text and "write %%Y" in text
    assert f"{path}, line 6: @(/no/such/file) cannot be resolved" in text
    assert "line 2" not in text


def test_healthchecks_daemons_run_in_chdir_and_the_if_env_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """healthchecks' docker/uwsgi.ini: three attach-daemon lines, one inside if-env with %(_)."""
    monkeypatch.setenv("SMTPD_PORT", "2525")
    specs = parse_declarations(str(CORPUS / "healthchecks-docker-uwsgi.ini"), base_dir="/")
    assert [s.command for s in specs] == [
        ("/opt/healthchecks/manage.py", "sendalerts"),
        ("/opt/healthchecks/manage.py", "sendreports", "--loop"),
        ("/opt/healthchecks/manage.py", "smtpd", "--port", "2525"),
    ]
    assert {s.cwd for s in specs} == {"/opt/healthchecks"}
    monkeypatch.delenv("SMTPD_PORT")
    assert len(parse_declarations(str(CORPUS / "healthchecks-docker-uwsgi.ini"), base_dir="/")) == 2


def test_env_lines_reach_every_daemon(tmp_path: Path) -> None:
    """uWSGI's master puts env = NAME=VALUE in its environment, which its daemons inherit."""
    path = corpus_copy(tmp_path, "dispatcharr-uwsgi.ini")
    found = read_file(str(path), str(tmp_path))
    assert found.env == {"DJANGO_SETTINGS_MODULE": "dispatcharr.settings", "USE_NGINX_ACCEL": "true"}
    path = tmp_path / "app.ini"
    path.write_text("[uwsgi]\nenv = A=1\nattach-daemon = worker one\nenv = A=2\nenv = B=x=y\n")
    (spec,) = parse_declarations(str(path), base_dir=str(tmp_path))
    assert dict(spec.env) == {"A": "2", "B": "x=y"}  # applied in order, all before daemons start


def test_a_named_section_that_includes_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """kitchenowl's wsgi.ini read as wsgi.ini:celery, whose ini = :uwsgi pulls the base section in."""
    monkeypatch.chdir(CORPUS)
    (spec,) = parse_declarations("kitchenowl-wsgi.ini:celery", base_dir=str(CORPUS))
    assert spec.pidfile == "/tmp/celery.pid" and spec.command[1:3] == ("-A", "app.celery_app")
    assert parse_declarations("kitchenowl-wsgi.ini:web", base_dir=str(CORPUS)) == ()
    assert parse_declarations("kitchenowl-wsgi.ini", base_dir=str(CORPUS)) == ()


def test_set_placeholder_and_a_smart_daemon(tmp_path: Path) -> None:
    """helfertool's uwsgi.conf: set-ph names a directory used by chdir and the smart daemon."""
    found = read_file(str(CORPUS / "helfertool-uwsgi.conf"), str(tmp_path))
    assert found.lines == [
        "smart-attach-daemon = /srv/helfertool/celery.pid /srv/helfertool/bin/celery -A helfertool worker"
        " -c 2 --pidfile=/srv/helfertool/celery.pid"
    ]
    assert found.cwd == "/srv/helfertool/helfertool"


def test_check_lists_each_foreign_key_once_and_a_cron_line_is_a_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    path = corpus_copy(tmp_path, "uwsgi.it-postgresql-backup.ini")
    specs = parse_declarations(str(path), base_dir=str(tmp_path))
    notes = [p for p in check_specs(specs) if p.code in ("W007", "W008")]
    assert notes == []  # pg is the file's placeholder; env, the daemon and the cron line are ours
    (job,) = [s for s in specs if s.schedule is not None]
    assert job.schedule == "59 3 * * *" and dict(job.env) == {"PGPASSWORD": "XXX"}
    assert job.command == (
        "/bin/sh",
        "-c",
        'pg_dump -U ZZZ YYY |bzip2 -9 > /home/u/backup/YYY_`date +"%d"`.sql.bz2',
    )
    specs = parse_declarations(str(CORPUS / "cla_backend-heroku.ini"), base_dir="/")
    assert specs == ()  # no daemon: nothing to attach the notes to
    path = tmp_path / "app.ini"
    path.write_text("[uwsgi]\nmaster = true\nsocket = :3031\nmaster = true\nattach-daemon = worker\n")
    (w007,) = [
        p for p in check_specs(parse_declarations(str(path), base_dir=str(tmp_path))) if p.code == "W007"
    ]
    assert w007.message == f"{path}: not ours, ignored: master (line 2, 4), socket (line 3)"


def test_the_check_command_on_a_real_file(tmp_path: Path) -> None:
    path = corpus_copy(tmp_path, "uffd-readme.ini")
    path.write_text(path.read_text() + "attach-daemon = worker\n")  # the README's file has no daemon
    ctx = Context(
        runtime_dir=str(tmp_path),
        load=lambda: parse_declarations(str(path)),
        source=str(path),
        warnings=check_specs,
    )
    out, err = io.StringIO(), io.StringIO()
    assert check(ctx, out, err) == 0
    lines = out.getvalue().splitlines()
    assert sum("not ours, ignored" in line for line in lines) == 1
    assert any(
        line.startswith("W008:") and "hook-pre-app = exec:FLASK_APP=uffd flask db upgrade" in line
        for line in lines
    )


def test_yaml_and_json_read_like_ini(tmp_path: Path) -> None:
    """The same options in uWSGI's three formats give the same declarations."""
    ini = corpus_copy(tmp_path, "tcs-uwsgi-redis.ini")
    (tmp_path / "redis.yaml").write_text(
        "uwsgi:\n"
        + "".join(f"  {line.replace(' = ', ': ', 1)}\n" for line in ini.read_text().splitlines()[1:])
    )
    options = dict(line.split(" = ", 1) for line in ini.read_text().splitlines()[1:])
    (tmp_path / "redis.json").write_text(json.dumps({"uwsgi": options}))
    readings = [
        parse_declarations(str(tmp_path / n), base_dir=str(tmp_path))
        for n in ("tcs-uwsgi-redis.ini", "redis.yaml", "redis.json")
    ]
    assert readings[0] == readings[1] == readings[2]
    assert readings[0][0].pidfile == f"{tmp_path}/redis.pid"


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_declarations("missing.ini", base_dir=str(tmp_path))
    assert f"cannot read {tmp_path}/missing.ini: No such file or directory" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_declarations("memcached -p 11211")
    assert "or name a uWSGI file (.ini, .yaml, .json)" in str(caught.value)
