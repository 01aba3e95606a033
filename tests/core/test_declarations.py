"""parse_declarations: every input parses or raises one ConfigError naming every problem
(docs/declarations.md)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attachdaemon_core.spec.declarations import (
    DECLARATION_KEYS,
    check_specs,
    leader_backend_problem,
    parse_declarations,
)
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec, Problem, ReadyProbe

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)

HEADER = "invalid daemon declarations in ATTACH_DAEMONS:"


def full(*problems: str) -> str:
    return "\n".join([HEADER, *(f"  - {p}" for p in problems)])


def one(decl: dict[str, Any], **kwargs: Any) -> DaemonSpec:
    (spec,) = parse_declarations({"d": decl}, base_dir="/srv/app", **kwargs)
    return spec


# Each bad input with its exact full message: what a user sees before anything starts.
BAD_INPUTS = [
    pytest.param(
        {"mc": {"command": "memcached", "stopsignal": "INT"}},
        ["daemon 'mc', key 'stopsignal': unknown key (did you mean 'stop_signal'?)"],
        id="unknown-key-uwsgi-spelling",
    ),
    pytest.param(
        {"mc": {"cmd": "memcached"}},
        [
            "daemon 'mc', key 'cmd': unknown key (did you mean 'command'?)",
            "daemon 'mc', key 'command': is required",
        ],
        id="unknown-key-cmd",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "chdir": "/tmp"}},
        ["daemon 'mc', key 'chdir': unknown key (did you mean 'cwd'?)"],
        id="unknown-key-chdir",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "uid": 1000}},
        ["daemon 'mc', key 'uid': unknown key (did you mean 'user'?)"],
        id="unknown-key-uid",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "pidfile": "/tmp/mc.pid", "freq": 3}},
        ["daemon 'mc', key 'freq': unknown key (did you mean 'start_timeout'?)"],
        id="unknown-key-freq",
    ),
    pytest.param(
        {"mc": {"comand": "memcached"}},
        [
            "daemon 'mc', key 'comand': unknown key (did you mean 'command'?)",
            "daemon 'mc', key 'command': is required",
        ],
        id="unknown-key-typo",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "stop-timeout": 3}},
        ["daemon 'mc', key 'stop-timeout': unknown key (did you mean 'stop_timeout'?)"],
        id="unknown-key-dash",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "shell": True}},
        [
            (
                "daemon 'mc', key 'shell': unknown key (commands never run through a shell: use a "
                "uWSGI line or ['/bin/sh', '-c', …])"
            )
        ],
        id="shell-key",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "stop_signal": "SIGTREM"}},
        ["daemon 'mc', key 'stop_signal': unknown signal 'SIGTREM' (did you mean 'SIGTERM'?)"],
        id="bad-signal-name",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "reload_signal": 99}},
        ["daemon 'mc', key 'reload_signal': unknown signal number 99"],
        id="bad-signal-number",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "stop_signal": True}},
        ["daemon 'mc', key 'stop_signal': must be a signal name or number, not True"],
        id="signal-bool",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "pidfile": "/tmp/mc.pid", "daemonize": "false"}},
        [
            (
                "daemon 'mc', key 'daemonize': must be true or false, not the string 'false' (use "
                "the boolean false, not a string)"
            )
        ],
        id="daemonize-string",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "pidfile": "/tmp/mc.pid", "daemonize": 1}},
        ["daemon 'mc', key 'daemonize': must be true or false, not 1"],
        id="daemonize-int",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "daemonize": True}},
        ["daemon 'mc', key 'daemonize': needs a pidfile (the supervisor writes the pid there)"],
        id="daemonize-without-pidfile",
    ),
    pytest.param(
        {"pg": {"command": "pg_ctl start", "process_name": "postgres"}},
        ["daemon 'pg', key 'process_name': only applies with a pidfile"],
        id="process-name-without-pidfile",
    ),
    pytest.param(
        {"c": {"command": "x", "control": True, "pidfile": "/tmp/x.pid"}},
        [
            (
                "daemon 'c', key 'control': a control daemon cannot have a pidfile (a control "
                "daemon is attached: drop pidfile or control)"
            )
        ],
        id="control-with-pidfile",
    ),
    pytest.param(
        {
            "a": {"command": "x", "depends_on": ["b"]},
            "b": {"command": "y", "depends_on": ["c"]},
            "c": {"command": "z", "depends_on": ["a"]},
        },
        ["daemon 'a', key 'depends_on': dependency cycle a -> b -> c -> a"],
        id="cycle",
    ),
    pytest.param(
        {"web": {"command": "x", "depends_on": ["redsi"]}, "redis": {"command": "redis-server"}},
        ["daemon 'web', key 'depends_on': unknown daemon 'redsi' (did you mean 'redis'?)"],
        id="unknown-dependency",
    ),
    pytest.param(
        {"a": {"command": "x", "depends_on": ["a"]}},
        ["daemon 'a', key 'depends_on': a daemon cannot depend on itself"],
        id="self-dependency",
    ),
    pytest.param(
        {"a": {"command": "x", "depends_on": "b"}, "b": {"command": "y"}},
        ["daemon 'a', key 'depends_on': must be a list of daemon names, not 'b' (write ['b'])"],
        id="depends-on-string",
    ),
    pytest.param(
        [{"name": "mc", "command": "memcached"}, {"name": "mc", "command": "memcached -p 2"}],
        ["daemon 'mc': declared more than once"],
        id="duplicate-names",
    ),
    pytest.param(
        {"my cache": {"command": "memcached"}},
        ["daemon 'my cache': invalid name (use only letters, digits, '_', '.' and '-')"],
        id="bad-name-chars",
    ),
    pytest.param(
        {"mc": {"command": ""}}, ["daemon 'mc', key 'command': must not be empty"], id="empty-command"
    ),
    pytest.param(
        {"mc": {"command": []}}, ["daemon 'mc', key 'command': must not be empty"], id="empty-list-command"
    ),
    pytest.param(
        {"mc": {"pidfile": "/tmp/mc.pid"}}, ["daemon 'mc', key 'command': is required"], id="missing-command"
    ),
    pytest.param(
        {"mc": {"command": 42}},
        ["daemon 'mc', key 'command': must be a string or a list of strings, not 42"],
        id="command-not-str",
    ),
    pytest.param(
        {"mc": {"command": "memcached && echo done"}},
        [
            (
                "daemon 'mc', key 'command': uses shell syntax '&&' (a command string is split "
                "into arguments, never run by a shell: use a list, or a script)"
            )
        ],
        id="native-command-shell-and",
    ),
    pytest.param(
        {"mc": {"command": "memcached > /tmp/log"}},
        [
            (
                "daemon 'mc', key 'command': uses shell syntax '>' (a command string is split "
                "into arguments, never run by a shell: use a list, or a script)"
            )
        ],
        id="native-command-redirect",
    ),
    pytest.param(
        {"mc": {"command": "memcached 'oops"}},
        ["daemon 'mc', key 'command': cannot be split into arguments: No closing quotation"],
        id="native-command-unbalanced-quote",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {"tcp": "127.0.0.1:11211", "http": "http://localhost/"}}},
        [("daemon 'mc', key 'ready': needs exactly one of tcp, http, command, postgres, not 2 (tcp, http)")],
        id="ready-two-probes",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {}}},
        ["daemon 'mc', key 'ready': needs exactly one of tcp, http, command, postgres"],
        id="ready-no-probe",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {"tcp": "127.0.0.1:70000"}}},
        ["daemon 'mc', key 'ready': tcp port must be 1-65535, not 70000"],
        id="ready-bad-port",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {"tcp": "localhost:0"}}},
        ["daemon 'mc', key 'ready': tcp port must be 1-65535, not 0"],
        id="ready-port-zero",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {"tcp": "localhost"}}},
        ["daemon 'mc', key 'ready': tcp must be 'host:port', not 'localhost'"],
        id="ready-no-port",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready": {"port": 11211}}},
        ["daemon 'mc', key 'ready': unknown probe 'port' (use one of tcp, http, command, postgres)"],
        id="ready-unknown-probe",
    ),
    pytest.param(
        {"web": {"command": "x", "ready": {"http": "localhost:8000/health"}}},
        [("daemon 'web', key 'ready': http must be an http:// or https:// URL, not 'localhost:8000/health'")],
        id="ready-http-not-url",
    ),
    pytest.param(
        {"mc": {"command": "memcached -d -P /tmp/mc.pid", "pidfile": "/tmp/mc.pid", "log": "prefix"}},
        [
            "daemon 'mc', key 'log': 'prefix' pipes output through the supervisor, which a smart daemon "
            "outlives (use a log path, 'runtime' (the default) or 'raw')"
        ],
        id="smart-log-prefix",
    ),
    pytest.param(
        {"pg": {"command": "postgres -D data", "ready": {"postgres": True}}},
        [
            (
                "daemon 'pg', key 'ready': the postgres probe needs a pidfile (set pidfile to the "
                "data directory's postmaster.pid)"
            )
        ],
        id="ready-postgres-without-pidfile",
    ),
    pytest.param(
        {
            "pg": {
                "command": "postgres -D data",
                "pidfile": "data/postmaster.pid",
                "ready": {"postgres": False},
            }
        },
        ["daemon 'pg', key 'ready': postgres must be true, not False"],
        id="ready-postgres-false",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"lock": "beat", "lease": 10}}},
        [
            (
                "daemon 'beat', key 'leader': lease 10s is too short: it must be at least 3*renew "
                "+ stop_timeout + 2s = 3*3s + 4s + 2s = 15s (raise lease, or lower renew or "
                "stop_timeout)"
            )
        ],
        id="leader-arithmetic",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "stop_timeout": 10, "leader": {"lock": "beat"}}},
        [
            (
                "daemon 'beat', key 'leader': lease 15s is too short: it must be at least 3*renew "
                "+ stop_timeout + 2s = 3*3s + 10s + 2s = 21s (raise lease, or lower renew or "
                "stop_timeout)"
            )
        ],
        id="leader-arithmetic-stop-timeout",
    ),
    pytest.param(
        {
            "beat": {
                "command": "celery beat",
                "leader": {"lock": "beat", "backend": "mysql://admin:hunter2@db/x"},
            }
        },
        [
            (
                "daemon 'beat', key 'leader': unsupported leader backend scheme 'mysql' (use "
                "'file', 'postgresql://…', 'redis://…' or 'django:ALIAS')"
            )
        ],
        id="leader-dsn-hidden",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"lock": "beat", "backend": "admin:hunter2@db"}}},
        [
            (
                "daemon 'beat', key 'leader': unsupported leader backend (not shown, it may hold "
                "a password) (use 'file', 'postgresql://…', 'redis://…' or 'django:ALIAS')"
            )
        ],
        id="leader-no-scheme-hidden",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"lock": "beat", "backend": "fiel"}}},
        [
            (
                "daemon 'beat', key 'leader': unsupported leader backend 'fiel' (use 'file', "
                "'postgresql://…', 'redis://…' or 'django:ALIAS')"
            )
        ],
        id="leader-backend-typo",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"backend": "file"}}},
        [
            (
                "daemon 'beat', key 'leader': needs a 'lock' name (use letters, digits, '_', '.', "
                "':', '@' and '-')"
            )
        ],
        id="leader-no-lock",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"lock": "beat", "ttl": 30}}},
        ["daemon 'beat', key 'leader': unknown leader key 'ttl'"],
        id="leader-unknown-key",
    ),
    pytest.param(
        {"beat": {"command": "celery beat", "leader": {"lock": "beat", "renew": 0}}},
        ["daemon 'beat', key 'leader': renew must be a number of seconds > 0, not 0"],
        id="leader-renew-zero",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "umask": "999"}},
        ["daemon 'mc', key 'umask': must be an octal mode such as '022' or 0o022, not '999'"],
        id="umask-out-of-range",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "umask": 1023}},
        ["daemon 'mc', key 'umask': must be an octal mode such as '022' or 0o022, not 1023"],
        id="umask-too-big",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "env": ["A=1"]}},
        ["daemon 'mc', key 'env': must be a mapping of variable names to values, not ['A=1']"],
        id="env-not-mapping",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "env": {"A=B": "1"}}},
        ["daemon 'mc', key 'env': variable name 'A=B' must be a non-empty string without '='"],
        id="env-name-with-equals",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "env": {"DEBUG": True}}},
        ["daemon 'mc', key 'env': the value of DEBUG must be a string or a number, not True"],
        id="env-bool-value",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "restart": "on_failure"}},
        [
            (
                "daemon 'mc', key 'restart': must be one of always, on-failure, never, not "
                "'on_failure' (did you mean 'on-failure'?)"
            )
        ],
        id="restart-typo",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "on_reload": "reload"}},
        ["daemon 'mc', key 'on_reload': must be one of restart, signal, keep, not 'reload'"],
        id="on-reload-bad",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "stop_timeout": -1}},
        ["daemon 'mc', key 'stop_timeout': must be a number of seconds >= 0, not -1"],
        id="negative-timeout",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "max_backoff": 10**400, "start_timeout": float("inf")}},
        [
            "daemon 'mc', key 'max_backoff': must be a number of seconds up to 1000000000, not "
            + repr(10**400)[:57]
            + "...",
            "daemon 'mc', key 'start_timeout': must be a number of seconds up to 1000000000, not inf",
        ],
        id="timeout-too-large",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "min_uptime": "5s"}},
        [
            (
                "daemon 'mc', key 'min_uptime': must be a number of seconds, not '5s' (write a "
                "plain number, without quotes or unit)"
            )
        ],
        id="timeout-with-unit",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "ready_timeout": True}},
        ["daemon 'mc', key 'ready_timeout': must be a number of seconds, not True"],
        id="timeout-bool",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "log_max_bytes": 0}},
        ["daemon 'mc', key 'log_max_bytes': must be a whole number >= 1, not 0"],
        id="log-max-bytes-zero",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "log_backups": 2.5}},
        ["daemon 'mc', key 'log_backups': must be a whole number >= 0, not 2.5"],
        id="log-backups-float",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "max_retries": -1}},
        ["daemon 'mc', key 'max_retries': must be a whole number >= 0, not -1"],
        id="max-retries-negative",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "touch": 5}},
        ["daemon 'mc', key 'touch': must be a path or a list of paths, not 5"],
        id="touch-not-path",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "user": True}},
        ["daemon 'mc', key 'user': must be a user name or id, not True"],
        id="user-bool",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "group": "no-such-group-attachdaemon"}},
        ["daemon 'mc', key 'group': unknown group 'no-such-group-attachdaemon'"],
        id="group-unknown",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "user": "no-such-user-attachdaemon"}},
        ["daemon 'mc', key 'user': unknown user 'no-such-user-attachdaemon'"],
        id="user-unknown",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "stdin": "yes"}},
        [
            (
                "daemon 'mc', key 'stdin': must be true or false, not the string 'yes' (use the "
                "boolean true, not a string)"
            )
        ],
        id="stdin-string",
    ),
    pytest.param(
        {"mc": {"command": "memcached", "autostart": None}},
        ["daemon 'mc', key 'autostart': must be true or false, not None"],
        id="autostart-none",
    ),
    pytest.param(
        {"mc": {"name": "cache", "command": "memcached"}},
        ["daemon 'mc', key 'name': 'cache' differs from the name it is declared under"],
        id="name-mismatch",
    ),
    pytest.param(
        {"mc": {1: "x", "command": "memcached"}},
        ["daemon 'mc', key '1': keys must be strings, not int"],
        id="non-string-key",
    ),
    pytest.param(
        "attach-daemon = memcached",
        [
            (
                "must be a mapping of name -> declaration, or a list of uWSGI lines, not str "
                "(wrap a single uWSGI line in a list, or name a uWSGI file (.ini, .yaml, .json))"
            )
        ],
        id="decls-string",
    ),
    pytest.param(
        42, ["must be a mapping of name -> declaration, or a list of uWSGI lines, not int"], id="decls-int"
    ),
    pytest.param(
        None,
        ["must be a mapping of name -> declaration, or a list of uWSGI lines, not NoneType"],
        id="decls-none",
    ),
    pytest.param(
        {"mc": ["memcached"]},
        ["daemon 'mc': must be a mapping of keys or a uWSGI line, not list"],
        id="mapping-value-list",
    ),
    pytest.param(
        [{"command": "memcached"}],
        ["item 1: a declaration in a list needs a 'name' key"],
        id="list-dict-without-name",
    ),
    pytest.param(
        ["attach-daemon = memcached", 7],
        ["item 2: must be a uWSGI line or a mapping with a 'name', not int"],
        id="list-item-int",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,ns_pid=1"],
        [
            (
                "daemon 'memcached', key 'attach-daemon2': ns_pid (a new PID namespace) is not "
                "supported (run it in a container)"
            )
        ],
        id="uwsgi-ns-pid",
    ),
    pytest.param(
        ["attach-daemon = celery worker && celery beat"],
        [
            (
                "uWSGI line 'attach-daemon = celery worker && celery beat': shell syntax '&&' is not "
                'supported: a daemon is one command (declare it natively as {"command": ["/bin/sh", '
                '"-c", "celery worker && celery beat"]}, where the shell is the daemon, or use a '
                "wrapper script ending in exec)"
            )
        ],
        id="uwsgi-and",
    ),
    pytest.param(
        ["attach-daemon = memcached -vv | logger"],
        [
            (
                "uWSGI line 'attach-daemon = memcached -vv | logger': shell syntax '|' is not "
                'supported: a daemon is one command (declare it natively as {"command": ["/bin/sh", '
                '"-c", "memcached -vv | logger"]}, where the shell is the daemon, or use a wrapper '
                "script ending in exec)"
            )
        ],
        id="uwsgi-pipe",
    ),
    pytest.param(
        ["attach-daemon = memcached &"],
        [
            (
                "uWSGI line 'attach-daemon = memcached &': shell syntax a trailing '&' is not "
                'supported: a daemon is one command (declare it natively as {"command": "memcached"}: '
                "the supervisor already runs it in the background)"
            )
        ],
        id="uwsgi-trailing-ampersand",
    ),
    pytest.param(
        ["attach-daemon = memcached -p `cat port`"],
        [
            (
                "uWSGI line 'attach-daemon = memcached -p `cat port`': shell syntax '`…`' is not "
                'supported: a daemon is one command (declare it natively as {"command": ["/bin/sh", '
                '"-c", "memcached -p `cat port`"]}, where the shell is the daemon, or use a wrapper '
                "script ending in exec)"
            )
        ],
        id="uwsgi-backticks",
    ),
    pytest.param(
        ["attach-daemon = memcached -p $(cat port)"],
        [
            (
                "uWSGI line 'attach-daemon = memcached -p $(cat port)': shell syntax '$(…)' is not "
                'supported: a daemon is one command (declare it natively as {"command": ["/bin/sh", '
                '"-c", "memcached -p $(cat port)"]}, where the shell is the daemon, or use a wrapper '
                "script ending in exec)"
            )
        ],
        id="uwsgi-command-substitution",
    ),
    pytest.param(
        ["attach-daemon = %(venv)/bin/celery worker"],
        [
            (
                "uWSGI line 'attach-daemon = %(venv)/bin/celery worker': uWSGI placeholder "
                "'%(venv)' is not supported (write the value out, or use $(NAME) for an "
                "environment variable)"
            )
        ],
        id="uwsgi-ini-placeholder",
    ),
    pytest.param(
        ["smart-attach-daemon = %d/mc.pid memcached -d -P %d/mc.pid"],
        [
            (
                "uWSGI line 'smart-attach-daemon = %d/mc.pid memcached -d -P %d/mc.pid': uWSGI "
                "placeholder '%d' is not supported (write the value out, or use $(NAME) for an "
                "environment variable)"
            )
        ],
        id="uwsgi-magic-var",
    ),
    pytest.param(
        ["attach-daemon = memcached -p @(port.txt)"],
        [
            (
                "uWSGI line 'attach-daemon = memcached -p @(port.txt)': uWSGI file reader "
                "'@(port.txt)' is not supported (write the value out, or use $(NAME) for an "
                "environment variable)"
            )
        ],
        id="uwsgi-file-reader",
    ),
    pytest.param(
        ["attach-daemon = $(ATTACHDAEMON_TEST_UNSET)/bin/memcached"],
        [
            (
                "uWSGI line 'attach-daemon = $(ATTACHDAEMON_TEST_UNSET)/bin/memcached': "
                "environment variable $(ATTACHDAEMON_TEST_UNSET) is not set"
            )
        ],
        id="uwsgi-unset-env",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,stopsignl=2"],
        [
            (
                "daemon 'memcached', key 'attach-daemon2': unknown attach-daemon2 key 'stopsignl' "
                "(did you mean 'stopsignal'?)"
            )
        ],
        id="uwsgi-attach-daemon2-unknown-key",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,legion=mylegion"],
        [
            (
                "daemon 'memcached', key 'attach-daemon2': unknown attach-daemon2 key 'legion' "
                "(use legion-attach-daemon)"
            )
        ],
        id="uwsgi-attach-daemon2-legion-key",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,pidfile=/tmp/mc.pid,daemonize=maybe"],
        [
            (
                "daemon 'memcached', key 'attach-daemon2': daemonize must be 1, true, yes, on or "
                "0, false, no, off, not 'maybe'"
            )
        ],
        id="uwsgi-attach-daemon2-bad-flag",
    ),
    pytest.param(
        ["attach-daemon2 = pidfile=/tmp/mc.pid,daemonize=1"],
        [("uWSGI line 'attach-daemon2 = pidfile=/tmp/mc.pid,daemonize=1': attach-daemon2 needs command=…")],
        id="uwsgi-attach-daemon2-no-command",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,pidfile=/tmp/mc.pid,freq=soon"],
        ["daemon 'memcached', key 'attach-daemon2': freq must be a whole number, not 'soon'"],
        id="uwsgi-attach-daemon2-bad-freq",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=memcached,stopsignal=QUITT"],
        ["daemon 'memcached', key 'stop_signal': unknown signal 'QUITT' (did you mean 'SIGQUIT'?)"],
        id="uwsgi-attach-daemon2-signal-name",
    ),
    pytest.param(
        ["smart-attach-daemon = celery flower --port=5555"],
        [
            (
                "uWSGI line 'smart-attach-daemon = celery flower --port=5555': the pidfile is "
                "missing ('celery' is not a pidfile path) (write 'PIDFILE CMD' with a space "
                "between them)"
            )
        ],
        id="uwsgi-smart-without-pidfile",
    ),
    pytest.param(
        ["smart-attach-daemon = /tmp/flower.pid"],
        [
            (
                "uWSGI line 'smart-attach-daemon = /tmp/flower.pid': the command is missing after "
                "the pidfile '/tmp/flower.pid' (write 'PIDFILE CMD' with a space between them)"
            )
        ],
        id="uwsgi-smart-without-command",
    ),
    pytest.param(
        ["smart-attach-daemon = /tmp/mc.pid,x memcached -d"],
        [
            (
                "uWSGI line 'smart-attach-daemon = /tmp/mc.pid,x memcached -d': the pidfile check "
                "count 'x' after ',' must be a whole number"
            )
        ],
        id="uwsgi-smart-bad-freq",
    ),
    pytest.param(
        ["attach-deamon = memcached"],
        [
            (
                "uWSGI line 'attach-deamon = memcached': unknown option 'attach-deamon' (did you "
                "mean 'attach-daemon'?)"
            )
        ],
        id="uwsgi-unknown-option",
    ),
    pytest.param(
        ["memcached -p 11211"],
        ["uWSGI line 'memcached -p 11211': not a uWSGI option line (write 'attach-daemon = CMD')"],
        id="uwsgi-not-an-option",
    ),
    pytest.param(
        ["attach-daemon ="],
        ["uWSGI line 'attach-daemon =': attach-daemon needs a value"],
        id="uwsgi-empty-value",
    ),
    pytest.param(
        ["attach-daemon2 = cmd=x,pidfile=/tmp/x.pid,control=1"],
        [
            (
                "daemon 'x', key 'control': a control daemon cannot have a pidfile (a control "
                "daemon is attached: drop pidfile or control)"
            )
        ],
        id="uwsgi-control-with-pidfile",
    ),
    pytest.param(
        ["legion-attach-daemon = mylegion"],
        [
            (
                "uWSGI line 'legion-attach-daemon = mylegion': the command is missing after the "
                "legion 'mylegion' (write 'LEGION CMD')"
            )
        ],
        id="uwsgi-legion-without-command",
    ),
    pytest.param(
        {"flower": "smart-attach-daemon = celery flower"},
        [
            (
                "daemon 'flower': uWSGI line 'smart-attach-daemon = celery flower': the pidfile "
                "is missing ('celery' is not a pidfile path) (write 'PIDFILE CMD' with a space "
                "between them)"
            )
        ],
        id="uwsgi-in-mapping",
    ),
]


@pytest.mark.parametrize(("decls", "problems"), BAD_INPUTS)
def test_bad_input_gets_its_exact_message(
    decls: object, problems: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATTACHDAEMON_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_declarations(decls, base_dir="/srv/app")
    assert str(info.value) == full(*problems)
    assert [str(p) for p in info.value.problems] == problems
    assert all(p.code == "E001" for p in info.value.problems)


def test_every_problem_in_one_input_is_reported_at_once() -> None:
    decls = [
        "attach-daemon = memcached -p 11211",
        "attach-daemon = a && b",
        {"name": "web", "command": "gunicorn app", "depends_on": ["memcache"], "stop_signal": "SIGTREM"},
        {
            "name": "beat",
            "command": "celery beat",
            "daemonize": "yes",
            "leader": {"lock": "beat", "lease": 5},
        },
        {"name": "bad name", "command": []},
    ]
    with pytest.raises(ConfigError) as info:
        parse_declarations(decls, base_dir="/srv/app", source="settings.ATTACH_DAEMONS")
    assert str(info.value) == "\n".join(
        [
            "invalid daemon declarations in settings.ATTACH_DAEMONS:",
            "  - uWSGI line 'attach-daemon = a && b': shell syntax '&&' is not supported: a daemon is one "
            'command (declare it natively as {"command": ["/bin/sh", "-c", "a && b"]}, where the shell '
            "is the daemon, or use a wrapper script ending in exec)",
            "  - daemon 'web', key 'stop_signal': unknown signal 'SIGTREM' (did you mean 'SIGTERM'?)",
            "  - daemon 'beat', key 'daemonize': must be true or false, not the string 'yes' "
            "(use the boolean true, not a string)",
            "  - daemon 'beat', key 'leader': lease 5s is too short: it must be at least "
            "3*renew + stop_timeout + 2s = 3*3s + 4s + 2s = 15s "
            "(raise lease, or lower renew or stop_timeout)",
            "  - daemon 'bad name': invalid name (use only letters, digits, '_', '.' and '-')",
            "  - daemon 'bad name', key 'command': must not be empty",
            "  - daemon 'web', key 'depends_on': unknown daemon 'memcache' (did you mean 'memcached'?)",
        ]
    )
    assert info.value.source == "settings.ATTACH_DAEMONS"
    assert len(info.value.problems) == 7
    assert {p.daemon for p in info.value.problems} == {None, "web", "beat", "bad name"}


def test_a_dsn_is_never_printed() -> None:
    secret = "postgresql://admin:hunter2@db.internal/app"
    with pytest.raises(ConfigError) as info:
        one({"command": "celery beat", "leader": {"lock": "beat", "backend": secret, "lease": 1}})
    assert "hunter2" not in str(info.value)
    assert "db.internal" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        one({"command": "celery beat", "leader": {"lock": "beat", "backend": "pgsql://admin:hunter2@db/x"}})
    assert "hunter2" not in str(info.value)
    assert "'pgsql'" in str(info.value)


# Every spelling of a credential a backend string may carry; none may reach a message.
CREDENTIAL_FORMS = [
    pytest.param("host=db.internal password=hunter2 dbname=app", id="libpq-key-value"),
    pytest.param("host=db password = hunter2", id="libpq-spaces-around-equals"),
    pytest.param("host=db password='hunter2 and more' dbname=app", id="libpq-quoted"),
    pytest.param(r"host=db password='hun\'ter2' dbname=app", id="libpq-quoted-escaped-quote"),
    pytest.param("dbname=app PASSWORD=hunter2", id="libpq-upper-case"),
    pytest.param("host=db sslpassword=hunter2", id="libpq-sslpassword"),
    pytest.param('host=db password="hunter2 and more"', id="double-quoted"),
]


@pytest.mark.parametrize("backend", CREDENTIAL_FORMS)
def test_a_password_is_never_printed__libpq_key_value_forms(backend: str) -> None:
    with pytest.raises(ConfigError) as info:
        one({"command": "celery beat", "leader": {"lock": "beat", "backend": backend}})
    text = str(info.value)
    for fragment in ("hunter2", "hun", "ter2", "and more"):
        assert fragment not in text, text
    assert "daemon 'd', key 'leader': unsupported leader backend" in text


@pytest.mark.parametrize("backend", CREDENTIAL_FORMS)
def test_a_password_is_never_printed__default_leader_backend(backend: str) -> None:
    problem = leader_backend_problem(backend)
    assert problem is not None and "unsupported leader backend" in problem
    for fragment in ("hunter2", "hun", "ter2", "and more"):
        assert fragment not in problem, problem


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://admin:hunter2@db.internal/app",
        "postgresql://admin:hun@ter2@db.internal/app",  # an unencoded '@' in the password
        "redis://:hunter2@r:6379/0",
        "redis://r:6379/0?password=hunter2",
        "host=db password=hunter2",
    ],
)
def test_a_password_is_never_printed__leader_given_as_a_string(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        one({"command": "celery beat", "leader": value})
    text = str(info.value)
    assert "must be a mapping" in text
    for fragment in ("hunter2", "hun", "ter2"):
        assert fragment not in text, text


# --- what valid declarations become ---------------------------------------------------------------


def test_a_minimal_declaration_gets_the_attached_defaults() -> None:
    spec = one({"command": "memcached -p 11211"})
    assert spec == DaemonSpec(name="d", command=("memcached", "-p", "11211"))
    assert spec.kind == "attached"
    assert (spec.on_reload, spec.log, spec.restart, spec.stop_timeout) == (
        "restart",
        "prefix",
        "always",
        10.0,
    )


def test_smart_defaults_keep_on_reload_and_log_to_the_runtime_dir() -> None:
    spec = one({"command": ["memcached", "-d", "-P", "/tmp/mc.pid"], "pidfile": "/tmp/mc.pid"})
    assert spec.kind == "smart"
    assert (spec.on_reload, spec.log) == ("keep", "runtime")


def test_daemonize_makes_smart2() -> None:
    spec = one({"command": "celery flower", "pidfile": "/tmp/flower.pid", "daemonize": True})
    assert spec.kind == "smart2"
    assert spec.daemonize is True


def test_daemonize_false_without_pidfile_is_fine() -> None:
    assert one({"command": "memcached", "daemonize": False}).kind == "attached"


def test_control_defaults_to_restart_never() -> None:
    spec = one({"command": "python3 watcher.py", "control": True})
    assert (spec.kind, spec.control, spec.restart) == ("attached", True, "never")
    assert one({"command": "x", "control": True, "restart": "on-failure"}).restart == "on-failure"


def test_leader_defaults_and_stop_timeout_four() -> None:
    spec = one({"command": "celery beat", "leader": {"lock": "beat"}}, leader_backend="redis://r:6379/0")
    assert spec.leader == LeaderSpec(lock="beat", backend="redis://r:6379/0", lease=15.0, renew=3.0)
    assert spec.stop_timeout == 4.0


@pytest.mark.parametrize(
    "backend", ["file", "postgresql://u@h/db", "postgres://h/db", "redis://h:6379/1", "django:default"]
)
def test_leader_backends_accepted(backend: str) -> None:
    leader = one({"command": "x", "leader": {"lock": "a", "backend": backend}}).leader
    assert leader is not None
    assert leader.backend == backend


def test_leader_arithmetic_boundary_is_accepted() -> None:
    spec = one({"command": "x", "stop_timeout": 10, "leader": {"lock": "a", "lease": 21, "renew": 3}})
    assert spec.leader is not None
    assert (spec.leader.lease, spec.stop_timeout) == (21.0, 10.0)


@pytest.mark.parametrize(("value", "number"), [("SIGINT", 2), ("INT", 2), ("int", 2), (2, 2), ("2", 2)])
def test_signals_by_name_or_number(value: object, number: int) -> None:
    spec = one({"command": "x", "stop_signal": value, "reload_signal": value})
    assert spec.stop_signal == number == signal.SIGINT
    assert spec.reload_signal == number


def test_every_key_converted() -> None:
    spec = one(
        {
            "command": ["./bin/worker", "--queue", "high"],
            "pidfile": "run/worker.pid",
            "daemonize": True,
            "start_timeout": 5,
            "process_name": "worker",
            "stop_signal": "SIGQUIT",
            "stop_timeout": 30,
            "on_reload": "signal",
            "reload_signal": "USR1",
            "reload_stop_signal": 15,
            "touch": ["reload.txt", "/etc/worker.conf"],
            "env": {"QUEUE": "high", "WORKERS": 4, "RATIO": 0.5},
            "cwd": "src",
            "user": 0,
            "group": "0",
            "umask": "022",
            "stdin": True,
            "log": "logs/worker.log",
            "log_max_bytes": 1024,
            "log_backups": 0,
            "restart": "on-failure",
            "max_retries": 3,
            "min_uptime": 2.5,
            "max_backoff": 60,
            "ready": {"tcp": "127.0.0.1:9000"},
            "ready_timeout": 20,
            "depends_on": [],
            "autostart": False,
        }
    )
    assert spec == DaemonSpec(
        name="d",
        command=("/srv/app/bin/worker", "--queue", "high"),
        pidfile="/srv/app/run/worker.pid",
        daemonize=True,
        start_timeout=5.0,
        process_name="worker",
        stop_signal=int(signal.SIGQUIT),
        stop_timeout=30.0,
        on_reload="signal",
        reload_signal=int(signal.SIGUSR1),
        reload_stop_signal=15,
        touch=("/srv/app/reload.txt", "/etc/worker.conf"),
        env=(("QUEUE", "high"), ("RATIO", "0.5"), ("WORKERS", "4")),
        cwd="/srv/app/src",
        user="0",
        group="0",
        umask=0o022,
        stdin=True,
        log="/srv/app/logs/worker.log",
        log_max_bytes=1024,
        log_backups=0,
        restart="on-failure",
        max_retries=3,
        min_uptime=2.5,
        max_backoff=60.0,
        ready=ReadyProbe(tcp=("127.0.0.1", 9000)),
        ready_timeout=20.0,
        depends_on=(),
        autostart=False,
    )


@pytest.mark.parametrize(("umask", "value"), [("022", 0o22), ("0o027", 0o27), (0o077, 0o77), ("0", 0)])
def test_umask_forms(umask: object, value: int) -> None:
    assert one({"command": "x", "umask": umask}).umask == value


@pytest.mark.parametrize(
    ("ready", "probe"),
    [
        ({"tcp": "localhost:6379"}, ReadyProbe(tcp=("localhost", 6379))),
        ({"tcp": "[::1]:11211"}, ReadyProbe(tcp=("::1", 11211))),
        ({"http": "http://127.0.0.1:8000/health"}, ReadyProbe(http="http://127.0.0.1:8000/health")),
        ({"command": "redis-cli ping"}, ReadyProbe(command=("redis-cli", "ping"))),
        ({"command": ["./check", "-q"]}, ReadyProbe(command=("/srv/app/check", "-q"))),
    ],
)
def test_ready_probes(ready: dict[str, object], probe: ReadyProbe) -> None:
    assert one({"command": "x", "ready": ready}).ready == probe


def test_postgres_probe_with_its_pidfile() -> None:
    spec = one({"command": "postgres -D data", "pidfile": "data/postmaster.pid", "ready": {"postgres": True}})
    assert spec.ready == ReadyProbe(postgres=True)
    assert spec.pidfile == "/srv/app/data/postmaster.pid"


def test_relative_paths_are_made_absolute_against_base_dir(tmp_path: Path) -> None:
    (spec,) = parse_declarations(
        {
            "w": {
                "command": "bin/worker --config conf/w.ini",
                "pidfile": "run/w.pid",
                "cwd": "..",
                "touch": "reload",
                "log": "logs/w.log",
            }
        },
        base_dir=str(tmp_path),
    )
    assert spec.command == (str(tmp_path / "bin/worker"), "--config", "conf/w.ini")
    assert spec.pidfile == str(tmp_path / "run/w.pid")
    assert spec.cwd == str(tmp_path.parent)
    assert spec.touch == (str(tmp_path / "reload"),)
    assert spec.log == str(tmp_path / "logs/w.log")


def test_relative_paths_default_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (spec,) = parse_declarations({"w": {"command": "./w", "pidfile": "w.pid"}})
    assert (spec.command[0], spec.pidfile) == (str(tmp_path / "w"), str(tmp_path / "w.pid"))


def test_a_bare_program_stays_bare_and_home_is_expanded() -> None:
    spec = one({"command": "memcached", "pidfile": "~/mc.pid", "cwd": Path("/srv") / "x"})
    assert spec.command == ("memcached",)
    assert spec.pidfile == os.path.expanduser("~/mc.pid")
    assert spec.cwd == "/srv/x"


def test_uwsgi_lines_resolve_relative_paths_too(tmp_path: Path) -> None:
    (spec,) = parse_declarations(
        ["smart-attach-daemon = run/mc.pid memcached -d -P run/mc.pid"], base_dir=str(tmp_path)
    )
    assert spec.pidfile == str(tmp_path / "run/mc.pid")
    assert spec.command == ("memcached", "-d", "-P", "run/mc.pid")


def test_seed_uwsgi_lines_become_specs() -> None:
    attached, smart = parse_declarations(
        [
            "attach-daemon = memcached -p 11211",
            "smart-attach-daemon = /tmp/mc.pid memcached -p 11211 -d -P /tmp/mc.pid",
        ]
    )
    assert attached == DaemonSpec(name="memcached", command=("memcached", "-p", "11211"))
    assert smart == DaemonSpec(
        name="memcached-2",
        command=("memcached", "-p", "11211", "-d", "-P", "/tmp/mc.pid"),
        pidfile="/tmp/mc.pid",
        on_reload="keep",
        log="runtime",
    )
    assert (attached.kind, smart.kind) == ("attached", "smart")


def test_each_uwsgi_form_gives_its_kind() -> None:
    specs = parse_declarations(
        [
            "attach-daemon = memcached",
            "attach-control-daemon = python3 watcher.py",
            "smart-attach-daemon = /tmp/a.pid a-server",
            "smart-attach-daemon2 = /tmp/b.pid b-server",
            "attach-daemon2 = cmd=c-server,pidfile=/tmp/c.pid,daemonize=0",
            "attach-daemon2 = cmd=d-server,pidfile=/tmp/d.pid,daemonize=1",
            "legion-attach-daemon = beat celery beat",
        ],
        leader_backend="django:default",
    )
    assert [(s.name, s.kind, s.control) for s in specs] == [
        ("memcached", "attached", False),
        ("python3", "attached", True),
        ("a-server", "smart", False),
        ("b-server", "smart2", False),
        ("c-server", "smart", False),
        ("d-server", "smart2", False),
        ("celery", "attached", False),
    ]
    assert specs[-1].leader == LeaderSpec(lock="beat", backend="django:default")
    assert specs[-1].stop_timeout == 4.0


def test_names_derived_around_explicit_ones() -> None:
    specs = parse_declarations(
        [
            "attach-daemon = memcached -p 1",
            {"name": "memcached-2", "command": "memcached -p 2"},
            "attach-daemon = memcached -p 3",
            "attach-daemon = redis-server",
        ]
    )
    assert [s.name for s in specs] == ["memcached", "memcached-2", "memcached-3", "redis-server"]


def test_a_mapping_key_names_a_uwsgi_line() -> None:
    (spec,) = parse_declarations({"cache": "attach-daemon = memcached -p 11211"})
    assert spec.name == "cache"
    assert spec.command == ("memcached", "-p", "11211")


def test_shell_wrapped_uwsgi_line_marks_the_spec() -> None:
    (spec,) = parse_declarations(["attach-daemon = memcached >> /tmp/mc.log 2>&1"])
    assert spec.shell is True
    assert spec.command == ("/bin/sh", "-c", "exec memcached >> /tmp/mc.log 2>&1")


def test_attach_daemon2_reloadsignal_becomes_reload_stop_signal() -> None:
    (spec,) = parse_declarations(["attach-daemon2 = cmd=celery worker,reloadsignal=SIGTERM,stopsignal=INT"])
    assert (spec.on_reload, spec.reload_stop_signal, spec.stop_signal) == ("restart", 15, 2)


def test_depends_on_in_any_declaration_order() -> None:
    web, db = parse_declarations(
        {"web": {"command": "x", "depends_on": ["db", "db"]}, "db": {"command": "postgres", "pidfile": "/p"}}
    )
    assert web.depends_on == ("db",)
    assert db.name == "db"


def test_wire_round_trip_is_equal() -> None:
    specs = parse_declarations(
        {
            "pg": {
                "command": "postgres -D /data",
                "pidfile": "/data/postmaster.pid",
                "ready": {"postgres": True},
                "env": {"PGPORT": 5433},
                "stop_signal": "SIGINT",
            },
            "mc": {"command": ["memcached"], "ready": {"tcp": "127.0.0.1:11211"}, "touch": ["/a", "/b"]},
            "beat": {"command": "celery beat", "leader": {"lock": "beat"}, "depends_on": ["pg"]},
            "check": {"command": "x", "ready": {"command": ["true"]}, "max_retries": None},
        }
    )
    import json

    for spec in specs:
        assert DaemonSpec.from_wire(json.loads(json.dumps(spec.to_wire()))) == spec


def test_an_empty_mapping_or_list_declares_nothing() -> None:
    assert parse_declarations({}) == ()
    assert parse_declarations([]) == ()


def test_declaration_keys_are_daemon_spec_fields() -> None:
    fields = set(DaemonSpec.__dataclass_fields__)
    assert set(DECLARATION_KEYS) <= fields
    assert "shell" not in DECLARATION_KEYS


# --- robustness ---------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["SIGINT", "022", "/tmp/x.pid", "a:1", "http://x", "restart", "attach-daemon = x"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([*DECLARATION_KEYS, "x"]), inner, max_size=4),
    ),
    max_leaves=12,
)
_declarations = st.dictionaries(st.sampled_from(DECLARATION_KEYS), _values, max_size=6)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _values,
        st.dictionaries(st.text(max_size=6), st.one_of(_declarations, st.text(max_size=40)), max_size=3),
        st.lists(st.one_of(_declarations, st.text(max_size=40)), max_size=3),
    )
)
def test_any_input_parses_or_raises_config_error(decls: object) -> None:
    try:
        specs = parse_declarations(decls, base_dir="/srv/app")
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p, Problem) for p in exc.problems)
    else:
        assert all(isinstance(s, DaemonSpec) for s in specs)


# --- check_specs ---------------------------------------------------------------------------------


def test_check_warns_about_a_missing_bare_executable() -> None:
    spec = one({"command": "no-such-program-attachdaemon --x"})
    bindir = os.path.dirname(sys.executable)
    assert check_specs([spec]) == [
        Problem(
            f"executable 'no-such-program-attachdaemon' not found in {bindir} or PATH",
            daemon="d",
            key="command",
            hint="it is looked up again at each start",
            code="W001",
        )
    ]


def test_check_finds_programs_in_the_interpreter_directory_and_path() -> None:
    python = os.path.basename(sys.executable)
    assert check_specs([one({"command": [python, "-V"]}), one({"command": "sh -c true"})]) == []


def test_check_warns_about_a_path_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("echo hi\n")
    (spec,) = parse_declarations({"d": {"command": "./run.sh"}}, base_dir=str(tmp_path))
    assert [(p.code, p.message) for p in check_specs([spec])] == [
        ("W001", f"{script} is not an executable file")
    ]
    script.chmod(0o755)
    assert check_specs([spec]) == []


def test_check_warns_about_a_missing_cwd(tmp_path: Path) -> None:
    (spec,) = parse_declarations({"d": {"command": "sh", "cwd": "gone"}}, base_dir=str(tmp_path))
    assert check_specs([spec]) == [
        Problem(f"directory {tmp_path / 'gone'} does not exist", daemon="d", key="cwd", code="W002")
    ]


@pytest.mark.parametrize(
    "decl",
    [
        {"command": "postgres -D /data", "pidfile": "/data/postmaster.pid"},
        {"command": "/usr/lib/postgresql/16/bin/postmaster -D /data"},
        {"command": "pg_ctl start -D /data", "pidfile": "/data/postmaster.pid", "process_name": "postgres"},
    ],
)
def test_check_warns_when_postgres_keeps_sigterm(decl: dict[str, object]) -> None:
    warnings = [p for p in check_specs([one(decl)]) if p.code == "W003"]
    assert warnings == [
        Problem(
            "PostgreSQL's SIGTERM is a smart shutdown that waits for every client to disconnect",
            daemon="d",
            key="stop_signal",
            hint="set stop_signal to SIGINT, its fast shutdown",
            code="W003",
        )
    ]
    assert [p for p in check_specs([one({**decl, "stop_signal": "SIGINT"})]) if p.code == "W003"] == []


def test_check_reports_a_user_switch_it_cannot_make() -> None:
    spec = one({"command": "sh", "user": "0", "group": "0"})
    problems = check_specs([spec])
    if os.geteuid() == 0:
        assert problems == []
    else:
        assert [(p.code, p.key) for p in problems] == [("E002", "user"), ("E002", "group")]


def test_check_accepts_our_own_user() -> None:
    spec = one({"command": "sh", "user": os.geteuid(), "group": os.getegid()})
    assert check_specs([spec]) == []
