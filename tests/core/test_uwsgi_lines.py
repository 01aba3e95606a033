"""uWSGI option lines -> native declaration dicts, with uWSGI's meaning (docs/declarations.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from attachdaemon_core.hosts.commands import Context, check
from attachdaemon_core.spec.declarations import check_specs, parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem
from attachdaemon_core.spec.uwsgi_lines import derive_names, parse_uwsgi_line, shell_syntax, split_kvlist

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)


def parsed(line: str, **kwargs: str) -> dict[str, object]:
    decl, problems = parse_uwsgi_line(line, **kwargs)
    assert problems == []
    return decl


def test_attach_daemon_from_the_seed() -> None:
    assert parsed("attach-daemon = memcached -p 11211") == {
        "name": "memcached",
        "command": ["memcached", "-p", "11211"],
    }


def test_smart_attach_daemon_from_the_seed() -> None:
    assert parsed("smart-attach-daemon = /tmp/mc.pid memcached -p 11211 -d -P /tmp/mc.pid") == {
        "name": "memcached",
        "pidfile": "/tmp/mc.pid",
        "command": ["memcached", "-p", "11211", "-d", "-P", "/tmp/mc.pid"],
    }


def test_smart_attach_daemon_freq_becomes_start_timeout() -> None:
    decl = parsed("smart-attach-daemon = run/mc.pid,3 memcached -d -P run/mc.pid")
    assert decl["pidfile"] == "run/mc.pid"
    assert decl["start_timeout"] == 3


def test_smart_attach_daemon2_daemonizes() -> None:
    assert parsed("smart-attach-daemon2 = /tmp/flower.pid celery flower --port=5555") == {
        "name": "celery",
        "pidfile": "/tmp/flower.pid",
        "command": ["celery", "flower", "--port=5555"],
        "daemonize": True,
    }


def test_attach_control_daemon_is_control() -> None:
    assert parsed("attach-control-daemon = python3 watcher.py") == {
        "name": "python3",
        "command": ["python3", "watcher.py"],
        "control": True,
    }


def test_legion_forms_use_the_legion_as_lock_and_the_backend_setting() -> None:
    backend = "redis://cache:6379/0"
    assert parsed("legion-attach-daemon = beat celery beat", leader_backend=backend) == {
        "name": "celery",
        "leader": {"lock": "beat", "backend": backend},
        "command": ["celery", "beat"],
    }
    smart = parsed("legion-smart-attach-daemon = mylegion /tmp/x.pid,5 x-server")
    assert smart["leader"] == {"lock": "mylegion", "backend": "file"}
    assert (smart["pidfile"], smart["start_timeout"], smart["command"]) == ("/tmp/x.pid", 5, ["x-server"])
    assert "daemonize" not in smart
    smart2 = parsed("legion-smart-attach-daemon2 = mylegion /tmp/x.pid x-server")
    assert smart2["daemonize"] is True
    assert smart2["leader"] == {"lock": "mylegion", "backend": "file"}


@pytest.mark.parametrize(
    "line",
    [
        "attach-daemon = memcached -p 11211",
        "attach-daemon: memcached -p 11211",
        "attach-daemon=memcached -p 11211",
        "  attach_daemon =   memcached -p 11211  ",
        "--attach-daemon memcached -p 11211",
        "--attach-daemon=memcached -p 11211",
        '--attach-daemon "memcached -p 11211"',
        "--attach-daemon 'memcached -p 11211'",
        "attach-daemon = exec memcached -p 11211",
    ],
)
def test_option_syntaxes_all_mean_the_same(line: str) -> None:
    assert parsed(line) == {"name": "memcached", "command": ["memcached", "-p", "11211"]}


def test_attach_daemon2_with_every_key() -> None:
    line = (
        "attach-daemon2 = cmd=memcached -p 11211 -P /run/mc.pid,pidfile=/run/mc.pid,daemonize=1,"
        "freq=4,touch=/app/reload;/app/other,stopsignal=2,stdin=true,uid=1000,gid=1000,"
        "chdir=/srv,max_throttle=5"
    )
    assert parsed(line) == {
        "name": "memcached",
        "command": ["memcached", "-p", "11211", "-P", "/run/mc.pid"],
        "pidfile": "/run/mc.pid",
        "daemonize": True,
        "start_timeout": 4,
        "touch": ["/app/reload", "/app/other"],
        "stop_signal": 2,
        "stdin": True,
        "user": 1000,
        "group": 1000,
        "cwd": "/srv",
        "max_backoff": 5,
    }


@pytest.mark.parametrize("alias", ["command", "cmd", "exec"])
def test_attach_daemon2_command_aliases(alias: str) -> None:
    assert parsed(f"attach-daemon2 = {alias}=redis-server --port 7000")["command"] == [
        "redis-server",
        "--port",
        "7000",
    ]


@pytest.mark.parametrize("value", ["0", "false", "no", "off", "FALSE"])
def test_attach_daemon2_flag_false_values_are_false(value: str) -> None:
    decl = parsed(f"attach-daemon2 = cmd=memcached,pidfile=/tmp/mc.pid,daemonize={value},control={value}")
    assert "daemonize" not in decl
    assert "control" not in decl


@pytest.mark.parametrize(
    "item", ["daemonize=1", "daemon=true", "daemonize=yes", "daemonize=ON", "daemonize="]
)
def test_attach_daemon2_flag_true_values_are_true(item: str) -> None:
    assert parsed(f"attach-daemon2 = cmd=memcached,pidfile=/tmp/mc.pid,{item}")["daemonize"] is True


def test_attach_daemon2_escaped_comma_stays_in_the_command() -> None:
    decl = parsed(r"attach-daemon2 = cmd=celery worker -Q a\,b\,c,stop_signal=15")
    assert decl["command"] == ["celery", "worker", "-Q", "a,b,c"]
    assert decl["stop_signal"] == 15


def test_attach_daemon2_uid_and_gid_zero_mean_unchanged_as_in_uwsgi() -> None:
    decl = parsed("attach-daemon2 = cmd=memcached,uid=0,gid=0,max_throttle=0")
    assert decl == {"name": "memcached", "command": ["memcached"]}


def test_attach_daemon2_accepts_account_and_signal_names() -> None:
    decl = parsed("attach-daemon2 = cmd=memcached,uid=nobody,gid=nogroup,stopsignal=SIGINT")
    assert (decl["user"], decl["group"], decl["stop_signal"]) == ("nobody", "nogroup", "SIGINT")


def test_reloadsignal_on_an_attached_daemon_is_a_restart_stopping_with_it() -> None:
    decl = parsed("attach-daemon2 = cmd=celery worker,reloadsignal=15,stopsignal=3")
    assert decl["on_reload"] == "restart"
    assert decl["reload_stop_signal"] == 15
    assert decl["stop_signal"] == 3


def test_notifypid_on_a_smart_daemon_signals_it_on_reload() -> None:
    decl = parsed("attach-daemon2 = cmd=nginx,pidfile=/run/nginx.pid,notifypid=1,reloadsignal=1")
    assert decl["on_reload"] == "signal"
    assert decl["reload_signal"] == 1
    assert "reload_stop_signal" not in decl
    alone = parsed("attach-daemon2 = cmd=nginx,pidfile=/run/nginx.pid,notifypid=1")
    assert alone["on_reload"] == "signal"
    assert "reload_signal" not in alone


def test_notifypid_on_an_attached_daemon_has_no_effect_as_in_uwsgi() -> None:
    assert parsed("attach-daemon2 = cmd=memcached,notifypid=1") == {
        "name": "memcached",
        "command": ["memcached"],
    }


def test_reloadsignal_on_a_smart_daemon_without_notifypid_is_ignored() -> None:
    decl = parsed("attach-daemon2 = cmd=nginx,pidfile=/run/nginx.pid,reloadsignal=10")
    assert "on_reload" not in decl
    assert "reload_stop_signal" not in decl


def test_redirections_run_through_sh_with_exec() -> None:
    decl = parsed("attach-daemon = exec memcached -vv >> /var/log/mc.log 2>&1")
    assert decl == {
        "name": "memcached",
        "command": ["/bin/sh", "-c", "exec memcached -vv >> /var/log/mc.log 2>&1"],
        "shell": True,
    }


def test_shell_variables_run_through_sh() -> None:
    decl = parsed("attach-daemon = $VIRTUAL_ENV/bin/celery -A proj worker")
    assert decl["command"] == ["/bin/sh", "-c", "exec $VIRTUAL_ENV/bin/celery -A proj worker"]
    assert decl["name"] == "celery"


def test_leading_assignments_stay_before_exec() -> None:
    decl = parsed('attach-daemon = C_FORCE_ROOT=1 OPTS="a b" celery worker > log')
    assert decl["command"] == ["/bin/sh", "-c", 'C_FORCE_ROOT=1 OPTS="a b" exec celery worker > log']
    assert decl["name"] == "celery"


def test_quotes_alone_are_split_without_a_shell() -> None:
    decl = parsed("""attach-daemon = python3 -c 'import time; time.sleep(60)' "two words" """)
    assert decl["command"] == ["python3", "-c", "import time; time.sleep(60)", "two words"]
    assert "shell" not in decl


def test_a_shell_wrapped_smart_daemon_names_its_real_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENV", "/opt/venv")
    decl = parsed("smart-attach-daemon = /tmp/beat.pid $VENV/bin/celery beat --pidfile=/tmp/beat.pid > log")
    assert decl["shell"] is True
    assert decl["process_name"] == "/opt/venv/bin/celery"


def test_env_placeholders_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_PORT", "11311")
    monkeypatch.setenv("RUN", "/run/app")
    decl = parsed("smart-attach-daemon = $(RUN)/mc.pid memcached -p $(MC_PORT) -d -P $(RUN)/mc.pid")
    assert decl["pidfile"] == "/run/app/mc.pid"
    assert decl["command"] == ["memcached", "-p", "11311", "-d", "-P", "/run/app/mc.pid"]


def test_unset_env_placeholders_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTACHDAEMON_NOPE_A", raising=False)
    monkeypatch.delenv("ATTACHDAEMON_NOPE_B", raising=False)
    line = "attach-daemon = $(ATTACHDAEMON_NOPE_A)/x $(ATTACHDAEMON_NOPE_B)"
    _, problems = parse_uwsgi_line(line)
    assert problems == [
        Problem(
            f"uWSGI line {line!r}: environment variable $(ATTACHDAEMON_NOPE_A), "
            "$(ATTACHDAEMON_NOPE_B) is not set"
        )
    ]


def test_problems_name_the_daemon_and_option_when_the_name_is_known() -> None:
    decl, problems = parse_uwsgi_line("attach-daemon2 = cmd=memcached,ns_pid=1,bogus=1")
    assert decl["name"] == "memcached"
    assert problems == [
        Problem("unknown attach-daemon2 key 'bogus'", daemon="memcached", key="attach-daemon2"),
        Problem(
            "ns_pid (a new PID namespace) is not supported",
            daemon="memcached",
            key="attach-daemon2",
            hint="run it in a container",
        ),
    ]


def test_a_line_too_broken_to_name_quotes_itself() -> None:
    decl, problems = parse_uwsgi_line("smart-attach-daemon = celery flower")
    assert decl == {"name": ""}
    assert problems == [
        Problem(
            "uWSGI line 'smart-attach-daemon = celery flower': the pidfile is missing "
            "('celery' is not a pidfile path)",
            hint="write 'PIDFILE CMD' with a space between them",
        )
    ]


def test_an_executable_as_first_word_is_not_taken_for_a_pidfile(tmp_path: Path) -> None:
    program = tmp_path / "worker"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    _, problems = parse_uwsgi_line(f"smart-attach-daemon = {program} --flag")
    assert len(problems) == 1
    assert "the pidfile is missing" in problems[0].message


def test_a_relative_pidfile_without_slash_is_accepted() -> None:
    assert parsed("smart-attach-daemon = mc.pid memcached -d -P mc.pid")["pidfile"] == "mc.pid"


def test_derive_names_numbers_repeats_and_avoids_taken_names() -> None:
    assert derive_names(["memcached", "memcached", "redis", "memcached"]) == [
        "memcached",
        "memcached-2",
        "redis",
        "memcached-3",
    ]
    assert derive_names(["memcached", "memcached"], taken={"memcached"}) == ["memcached-2", "memcached-3"]
    assert derive_names(["", "x"]) == ["", "x"]


def test_names_come_from_the_program_basename() -> None:
    assert parsed("attach-daemon = /usr/local/bin/redis-server /etc/redis.conf")["name"] == "redis-server"
    assert parsed("attach-daemon = ./bin/my+tool run")["name"] == "my-tool"


def test_split_kvlist_follows_uwsgi_escaping() -> None:
    assert split_kvlist(r"cmd=a\,b,stdin,,touch=x;y,k=v=w, pidfile=p,CMD=c") == [
        ("cmd", "a,b"),
        ("stdin", None),
        ("touch", "x;y"),
        ("k", "v=w"),
        (" pidfile", "p"),  # keys stay as written: uWSGI compares them exactly
        ("CMD", "c"),
    ]


@pytest.mark.parametrize(
    ("cmd", "refused", "needs_sh"),
    [
        ("memcached -p 1", [], []),
        ("a && b", ["&&"], []),
        ("a || b", ["||"], []),
        ("a | b", ["|"], []),
        ("a; b", [";"], []),
        ("a &", ["trailing &"], []),
        ("a & b", ["&"], []),
        ("a `b`", ["`…`"], []),
        ("a $(b c)", ["$(…)"], []),
        ("(a)", ["(", ")"], []),
        ("a > log 2>&1", [], [">", ">", ">&"]),
        ("a < in", [], ["<"]),
        ("a $HOME", [], ["$"]),
        ('a "$HOME"', [], ["$"]),
        ("a '$HOME && b'", [], []),
        ('a "x; y | z"', [], []),
        (r"a \; b", [], []),
        ("a *.txt", [], ["*"]),
        ("a ~/x", [], ["~"]),
        ("a b~c", [], []),
        ("a # note", [], ["#"]),
        ("X=1 a", [], ["VAR=value"]),
        ("a 'open", ["unterminated quote"], []),
    ],
)
def test_shell_syntax_classification(cmd: str, refused: list[str], needs_sh: list[str]) -> None:
    assert shell_syntax(cmd) == (refused, needs_sh)


# --- hostile input: every line either parses or raises ConfigError, nothing else -------------------

_OPTIONS = [
    "attach-daemon", "attach-control-daemon", "smart-attach-daemon", "smart-attach-daemon2",
    "attach-daemon2", "legion-attach-daemon", "legion-smart-attach-daemon", "legion-smart-attach-daemon2",
    "attach-daemon3",
]  # fmt: skip
_KV_KEYS = [
    "cmd",
    "command",
    "exec",
    "freq",
    "pidfile",
    "daemonize",
    "daemon",
    "control",
    "touch",
    "stopsignal",
    "stop_signal",
    "reloadsignal",
    "stdin",
    "uid",
    "gid",
    "chdir",
    "max_throttle",
    "notifypid",
    "ns_pid",
    "bogus",
]
_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_kvlist = st.lists(st.tuples(st.sampled_from(_KV_KEYS), st.one_of(st.none(), _words)), max_size=5).map(
    lambda kv: ",".join(k if v is None else f"{k}={v}" for k, v in kv)
)


@hyp_settings(max_examples=400, deadline=None)
@given(
    option=st.sampled_from(_OPTIONS),
    sep=st.sampled_from([" = ", "=", ": ", " "]),
    value=st.one_of(_kvlist, st.lists(_words, max_size=5).map(" ".join), _words),
)
def test_any_uwsgi_line_parses_or_raises_config_error(option: str, sep: str, value: str) -> None:
    try:
        specs = parse_declarations([f"{option}{sep}{value}"], base_dir="/srv/app")
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
    else:
        assert all(isinstance(s, DaemonSpec) and s.command for s in specs)


# --- a trailing ';': /bin/sh -c (which uWSGI runs every command with) ignores it -----------------

SEMICOLON_LINE = "smart-attach-daemon = x.pid celery worker -A app --pidfile=x.pid;"
SEMICOLON_NOTE = Problem(
    "the trailing ';' was dropped",
    daemon="celery",
    key="smart-attach-daemon",
    hint="uWSGI runs the command with /bin/sh -c, which ignores it",
    code="W004",
)


def test_a_trailing_semicolon_is_dropped_with_a_note() -> None:
    decl, problems = parse_uwsgi_line(SEMICOLON_LINE)
    assert decl == {
        "name": "celery",
        "pidfile": "x.pid",
        "command": ["celery", "worker", "-A", "app", "--pidfile=x.pid"],
    }
    assert problems == [SEMICOLON_NOTE]


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("attach-daemon = memcached -p 11211 ;", ["memcached", "-p", "11211"]),
        ("attach-daemon = exec memcached;  ", ["memcached"]),
        ("attach-daemon2 = cmd=memcached -vv;,stopsignal=2", ["memcached", "-vv"]),
        ("legion-attach-daemon = beat celery beat;", ["celery", "beat"]),
        ("attach-daemon = memcached > /tmp/mc.log;", ["/bin/sh", "-c", "exec memcached > /tmp/mc.log"]),
    ],
)
def test_every_option_drops_a_trailing_semicolon(line: str, command: list[str]) -> None:
    decl, problems = parse_uwsgi_line(line)
    assert decl["command"] == command
    assert [(p.code, p.message) for p in problems] == [("W004", "the trailing ';' was dropped")]


@pytest.mark.parametrize(
    ("line", "construct"),
    [
        ("attach-daemon = a; b;", "';'"),  # still two commands
        ("attach-daemon = a;;", "';'"),  # ';;' is a syntax error to sh
        ("attach-daemon = a & ;", "a trailing '&'"),
        ("attach-daemon = ;", "';'"),
    ],
)
def test_only_a_lone_trailing_semicolon_is_dropped(line: str, construct: str) -> None:
    _, problems = parse_uwsgi_line(line)
    assert len(problems) == 1
    assert problems[0].code == "E001"
    assert f"shell syntax {construct}" in problems[0].message


@pytest.mark.parametrize("line", ["attach-daemon = echo \\;", "attach-daemon = echo ';'"])
def test_an_escaped_or_quoted_semicolon_is_an_argument(line: str) -> None:
    assert parsed(line)["command"] == ["echo", ";"]


def test_check_reports_the_dropped_semicolon(tmp_path: Path) -> None:
    specs = parse_declarations([SEMICOLON_LINE], base_dir=str(tmp_path))
    assert specs[0].command == ("celery", "worker", "-A", "app", "--pidfile=x.pid")
    assert SEMICOLON_NOTE in check_specs(specs)
    named = parse_declarations({"worker": SEMICOLON_LINE}, base_dir=str(tmp_path))
    assert [p.daemon for p in check_specs(named) if p.code == "W004"] == ["worker"]
    ctx = Context(runtime_dir=str(tmp_path), load=lambda: specs, source="test", warnings=check_specs)
    out, err = io.StringIO(), io.StringIO()
    assert check(ctx, out, err) == 0
    assert f"W004: {SEMICOLON_NOTE}\n" in out.getvalue()


# --- '%%': uWSGI's config-file reader (core/utils.c magic_sub) makes it a literal '%' ------------


def test_a_doubled_percent_is_a_literal_percent_as_uwsgis_config_reader_makes_it() -> None:
    decl = parsed("attach-daemon = celery -A app worker -n default@%%h --autoscale=6,1")
    assert decl["command"] == ["celery", "-A", "app", "worker", "-n", "default@%h", "--autoscale=6,1"]
    assert parsed("attach-daemon = printf 100%%%%")["command"] == ["printf", "100%%"]
    assert parsed("smart-attach-daemon = /tmp/%%w.pid w -P /tmp/%%w.pid")["pidfile"] == "/tmp/%w.pid"


def test_a_doubled_percent_on_uwsgis_command_line_stays_as_written() -> None:
    """``--option value`` is uWSGI's command line, which no magic_sub reads."""
    assert parsed("--attach-daemon celery worker -n w@%%h")["command"] == ["celery", "worker", "-n", "w@%%h"]


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ("attach-daemon = celery worker -n w@%h", "%h"),  # a lone %h: uWSGI's hostname, ini-only
        ("attach-daemon = celery worker -n w@%%%h", "%h"),  # '%' then %h
        ("attach-daemon = x --dir %%(chdir)", "%(chdir)"),  # '%(chdir)' after '%%': uWSGI expands it
        ("--attach-daemon x --dir %%(chdir)", "%(chdir)"),  # uWSGI expands it on the command line too
    ],
)
def test_placeholders_around_a_doubled_percent_are_still_refused(line: str, token: str) -> None:
    _, problems = parse_uwsgi_line(line)
    assert [p.message for p in problems] == [
        f"uWSGI line {line!r}: uWSGI placeholder {token!r} is not supported"
    ]


# --- attach-daemon2 keys: uWSGI's uwsgi_kvlist_parse stores only 'key=value' items whose key is
# --- exactly one it knows (strcmp); anything else it ignores, and so do we, saying so ----------


def note(message: str, daemon: str, hint: str | None = None) -> Problem:
    return Problem(message, daemon=daemon, key="attach-daemon2", hint=hint, code="W004")


def test_attach_daemon2_bare_key_is_ignored_as_in_uwsgi_with_a_note() -> None:
    decl, problems = parse_uwsgi_line("attach-daemon2 = cmd=./run-celery.sh,daemonize")
    assert decl == {"name": "run-celery.sh", "command": ["./run-celery.sh"]}
    assert problems == [
        note(
            "key 'daemonize' has no value: uWSGI ignores it, and so does attachdaemon",
            "run-celery.sh",
            "write daemonize=1 to use it",
        )
    ]


@pytest.mark.parametrize(
    ("item", "hint"),
    [
        ("notifypid", "write notifypid=1 to use it"),
        ("pidfile", "write pidfile=… to use it"),
        (" stdin", "write stdin=1, without the space, to use it"),
        ("ns_pid", None),
    ],
)
def test_attach_daemon2_every_bare_key_is_ignored(item: str, hint: str | None) -> None:
    decl, problems = parse_uwsgi_line(f"attach-daemon2 = cmd=nginx,{item}")
    assert decl == {"name": "nginx", "command": ["nginx"]}
    message = f"key {item.strip()!r} has no value: uWSGI ignores it, and so does attachdaemon"
    assert problems == [note(message, "nginx", hint)]


WEB2PY = (
    "attach-daemon2 = cmd=python web2py.py -S player -M -R run_mprpc.py, pidfile=/tmp/mprpc.pid,"
    " touch=/srv/run_mprpc.py,chdir=/srv/web2py"
)


def test_attach_daemon2_keys_after_a_comma_and_space_are_ignored_as_in_uwsgi_with_notes() -> None:
    decl, problems = parse_uwsgi_line(WEB2PY)
    assert decl == {
        "name": "python",
        "command": ["python", "web2py.py", "-S", "player", "-M", "-R", "run_mprpc.py"],
        "cwd": "/srv/web2py",
    }
    assert problems == [
        note(
            f"key ' {key}' has a space, so it is not {key!r}: uWSGI ignores it, and so does attachdaemon",
            "python",
            "remove the space after the ',' to use it",
        )
        for key in ("pidfile", "touch")
    ]


def test_attach_daemon2_a_space_before_the_equals_sign_counts_too() -> None:
    decl, problems = parse_uwsgi_line("attach-daemon2 = cmd=memcached,stopsignal =2")
    assert decl == {"name": "memcached", "command": ["memcached"]}
    assert [(p.code, p.hint) for p in problems] == [("W004", "remove the space before the '=' to use it")]


def test_attach_daemon2_an_ignored_command_key_is_named_when_the_command_is_missing() -> None:
    _, problems = parse_uwsgi_line("attach-daemon2 = pidfile=/tmp/x.pid, cmd=memcached")
    assert [(p.message, p.hint) for p in problems] == [
        (
            "uWSGI line 'attach-daemon2 = pidfile=/tmp/x.pid, cmd=memcached': attach-daemon2 needs command=…",
            "key ' cmd' has a space, so it is not 'cmd': uWSGI ignores it",
        )
    ]


def test_check_reports_the_ignored_keys(tmp_path: Path) -> None:
    specs = parse_declarations({"web2py": WEB2PY}, base_dir=str(tmp_path))
    assert (specs[0].pidfile, specs[0].touch) == (None, ())
    notes = [p for p in check_specs(specs) if p.code == "W004"]
    assert [(p.daemon, p.message.split(":")[0]) for p in notes] == [
        ("web2py", "key ' pidfile' has a space, so it is not 'pidfile'"),
        ("web2py", "key ' touch' has a space, so it is not 'touch'"),
    ]
    ctx = Context(runtime_dir=str(tmp_path), load=lambda: specs, source="test", warnings=check_specs)
    out, err = io.StringIO(), io.StringIO()
    assert check(ctx, out, err) == 0
    for p in notes:
        assert f"W004: {p}\n" in out.getvalue()


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("CMD", "attach-daemon2 keys are lower-case: write 'cmd'"),
        ("PidFile", "attach-daemon2 keys are lower-case: write 'pidfile'"),
        ("Bogus_Key", None),
    ],
)
def test_attach_daemon2_keys_are_case_sensitive_and_shown_as_written(key: str, hint: str | None) -> None:
    decl, problems = parse_uwsgi_line(f"attach-daemon2 = cmd=memcached,{key}=/tmp/x.pid")
    assert "pidfile" not in decl
    assert problems == [
        Problem(f"unknown attach-daemon2 key {key!r}", daemon="memcached", key="attach-daemon2", hint=hint)
    ]


@pytest.mark.parametrize(("rest", "key"), [("b -l info", "b -l info"), ("b --loglevel=info", "b --loglevel")])
def test_attach_daemon2_an_item_cut_from_the_command_by_a_comma_is_refused(rest: str, key: str) -> None:
    """uWSGI would run ``celery worker -Q a`` and ignore the rest: refused, with the fix."""
    _, problems = parse_uwsgi_line(f"attach-daemon2 = cmd=celery worker -Q a,{rest}")
    assert problems == [
        Problem(
            f"unknown attach-daemon2 key {key!r}",
            daemon="celery",
            key="attach-daemon2",
            hint="if it is part of the command, write the ',' before it as '\\,'",
        )
    ]


@pytest.mark.parametrize(
    ("line", "native"),
    [
        (
            "attach-daemon = cd /app/frontend && npm run dev",
            {"command": "npm run dev", "cwd": "/app/frontend"},
        ),
        ("attach-daemon = memcached &", {"command": "memcached"}),
        ("attach-daemon = memcached -vv | logger", {"command": ["/bin/sh", "-c", "memcached -vv | logger"]}),
        ("attach-daemon = a; b", {"command": ["/bin/sh", "-c", "a; b"]}),
    ],
)
def test_a_refused_line_names_the_native_declaration_it_stands_for(
    line: str, native: dict[str, object]
) -> None:
    """The hint is the declaration itself, ready to paste: it parses, with the line's meaning."""
    _, problems = parse_uwsgi_line(line)
    (problem,) = problems
    assert problem.hint is not None
    shown = json.loads(problem.hint[problem.hint.index("{") : problem.hint.rindex("}") + 1])
    assert shown == native
    (spec,) = parse_declarations({"d": shown}, base_dir="/srv/app")
    assert spec.command[0] in ("/bin/sh", "npm", "memcached")
