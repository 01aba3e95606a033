"""load_toml: [daemons.NAME] tables and uwsgi lines from a TOML file (docs/declarations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attachdaemon_core.spec.config_file import FileConfig, load_toml, read_runtime_dir
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec, ReadyProbe

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)


def write(tmp_path: Path, text: str, name: str = "daemons.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_of(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert info.value.source == path
    return str(info.value)


def test_tables_and_uwsgi_lines_are_merged(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
uwsgi = [
    "attach-daemon = memcached -p 11211",
    "smart-attach-daemon = run/mc.pid memcached -p 11212 -d -P run/mc.pid",
]

[daemons.redis]
command = ["redis-server", "--port", "6380"]
ready = { tcp = "127.0.0.1:6380" }

[daemons.worker]
command = "celery -A proj worker"
depends_on = ["redis", "memcached"]
env = { CELERY_CONCURRENCY = 2 }
""",
    )
    config = load_toml(path)
    assert config == FileConfig(
        path=path,
        specs=(
            DaemonSpec(
                name="redis",
                command=("redis-server", "--port", "6380"),
                ready=ReadyProbe(tcp=("127.0.0.1", 6380)),
            ),
            DaemonSpec(
                name="worker",
                command=("celery", "-A", "proj", "worker"),
                depends_on=("redis", "memcached"),
                env=(("CELERY_CONCURRENCY", "2"),),
            ),
            DaemonSpec(name="memcached", command=("memcached", "-p", "11211")),
            DaemonSpec(
                name="memcached-2",
                command=("memcached", "-p", "11212", "-d", "-P", "run/mc.pid"),
                pidfile=str(tmp_path / "run/mc.pid"),
                on_reload="keep",
                log="runtime",
            ),
        ),
    )


def test_settings_and_their_defaults(tmp_path: Path) -> None:
    assert load_toml(write(tmp_path, "")) == FileConfig(path=str(tmp_path / "daemons.toml"), specs=())
    path = write(
        tmp_path,
        """
runtime_dir = "state/run"
wait_ready = 2.5
leader_backend = "redis://cache:6379/0"
autostart = true
uwsgi = ["legion-attach-daemon = beat celery -A proj beat"]
""",
    )
    config = load_toml(path)
    assert config.runtime_dir == str(tmp_path / "state/run")
    assert (config.wait_ready, config.leader_backend, config.autostart) == (2.5, "redis://cache:6379/0", True)
    (beat,) = config.specs
    assert beat.leader == LeaderSpec(lock="beat", backend="redis://cache:6379/0")


def test_relative_paths_are_taken_against_the_file_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(
        conf,
        """
[daemons.w]
command = "./bin/w"
pidfile = "run/w.pid"
cwd = "."
touch = ["../reload"]
log = "logs/w.log"
""",
    )
    (spec,) = load_toml("conf/daemons.toml").specs
    assert spec.command == (str(conf / "bin/w"),)
    assert (spec.pidfile, spec.cwd) == (str(conf / "run/w.pid"), str(conf))
    assert spec.touch == (str(tmp_path / "reload"),)
    assert spec.log == str(conf / "logs/w.log")
    assert load_toml("conf/daemons.toml").path == path


def test_every_problem_of_the_file_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
runtime = "/tmp/x"
wait_ready = -1
leader_backend = "mysql://root:hunter2@db/x"
uwsgi = ["attach-daemon = a | b"]

[daemons.mc]
command = "memcached"
daemonize = "true"

[daemons.pg]
command = "postgres -D data"
depends_on = ["mc", "nope"]
""",
    )
    assert error_of(path) == "\n".join(
        [
            f"invalid daemon declarations in {path}:",
            "  - key 'runtime': unknown top-level key (did you mean 'runtime_dir'?)",
            "  - key 'wait_ready': must be a number of seconds >= 0, not -1",
            "  - key 'leader_backend': unsupported leader backend scheme 'mysql'",
            "  - daemon 'mc', key 'daemonize': must be true or false, not the string 'true' "
            "(use the boolean true, not a string)",
            "  - uWSGI line 'attach-daemon = a | b': shell syntax '|' is not supported: a daemon is one "
            'command (declare it natively as {"command": ["/bin/sh", "-c", "a | b"]}, where the shell '
            "is the daemon, or use a wrapper script ending in exec)",
            "  - daemon 'pg', key 'depends_on': unknown daemon 'nope'",
        ]
    )


def test_wait_ready_must_be_a_sane_number(tmp_path: Path) -> None:
    path = write(tmp_path, "wait_ready = inf\n")
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n"
        "  - key 'wait_ready': must be a number of seconds >= 0, not inf"
    )
    assert load_toml(write(tmp_path, "wait_ready = 30\n", "ok.toml")).wait_ready == 30.0


def test_setting_names_from_other_hosts_get_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "ATTACH_DAEMONS_WAIT_READY = 3\n")
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n"
        "  - key 'ATTACH_DAEMONS_WAIT_READY': unknown top-level key (did you mean 'wait_ready'?)"
    )


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemons.mc]\ncommand = "memcached"\npidfile = \n')
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n  - TOML syntax error at line 3, column 11: Invalid value"
    )


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.toml")
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n  - cannot read the file: No such file or directory"
    )


def test_daemon_entries_must_be_tables(tmp_path: Path) -> None:
    path = write(tmp_path, 'daemons = { mc = "attach-daemon = memcached" }\nuwsgi = "attach-daemon = x"\n')
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n"
        "  - daemon 'mc': must be a [daemons.NAME] table "
        "(put uWSGI lines in the top-level uwsgi = [...] list)\n"
        "  - key 'uwsgi': must be a list of uWSGI option lines"
    )


def test_a_name_key_must_match_the_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemons.mc]\nname = "cache"\ncommand = "memcached"\n')
    assert error_of(path) == (
        f"invalid daemon declarations in {path}:\n"
        "  - daemon 'mc', key 'name': 'cache' differs from the table name"
    )


def test_table_names_and_line_names_must_not_clash_silently(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'uwsgi = ["attach-daemon = memcached -p 1"]\n[daemons.memcached]\ncommand = "memcached -p 2"\n',
    )
    assert [s.name for s in load_toml(path).specs] == ["memcached", "memcached-2"]


def test_read_runtime_dir_alone_even_when_the_declarations_are_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, 'runtime_dir = "run"\n[daemons.mc]\ncommand = ""\n')
    assert read_runtime_dir(path) == str(tmp_path / "run")
    assert read_runtime_dir(write(tmp_path, "wait_ready = 1\n", "plain.toml")) is None
    assert read_runtime_dir(write(tmp_path, "runtime_dir = 5\n", "bad.toml")) is None
    assert read_runtime_dir(write(tmp_path, "runtime_dir = \n", "broken.toml")) is None
    assert read_runtime_dir(str(tmp_path / "absent.toml")) is None
