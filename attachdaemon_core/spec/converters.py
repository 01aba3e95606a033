"""The per-key converters of a native declaration: each returns its raw value checked and
normalised, or raises :class:`Invalid` naming the problem and the fix (docs/declarations.md)."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attachdaemon_core.leader.rules import BACKEND_HINT, client_kind, client_problem
from attachdaemon_core.leader.rules import backend_problem as leader_backend_problem
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import LeaderSpec, ReadyProbe
from attachdaemon_core.spec.redaction import redact
from attachdaemon_core.spec.uwsgi_command import shell_syntax, show_constructs

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
LOCK_RE = re.compile(r"[A-Za-z0-9_.:@-]+\Z")
ENV_NAME_RE = re.compile(r"[^=\0]+\Z")
LEADER_STOP_TIMEOUT = 4.0
MAX_SECONDS = 10**9  # about 31 years: larger durations are typos (and may not fit a float)


if sys.platform != "win32":
    import grp
    import pwd


class Invalid(Exception):
    """One key's value is wrong; ``message``, ``hint`` and ``code`` become a Problem."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E001") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


@dataclass(frozen=True)
class Context:
    """What a converter needs besides the value: where relative paths start, the defaults."""

    name: str
    base_dir: str
    leader_backend: str
    from_line: bool


Converter = Callable[[object, Context], Any]


def _bool(value: object, ctx: Context) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
        boolean = "true" if word in {"true", "yes", "on", "1"} else "false"
        hint = f"use the boolean {boolean}, not a string"
        raise Invalid(f"must be true or false, not the string {value!r}", hint)
    raise Invalid(f"must be true or false, not {show_value(value)}")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = "write a plain number, without quotes or unit" if isinstance(value, str) else None
        raise Invalid(f"must be {what}, not {show_value(value)}", hint)
    if not value <= MAX_SECONDS:  # also refuses nan, inf and ints too large for a float
        raise Invalid(f"must be {what} up to {MAX_SECONDS}, not {show_value(value)}")
    if value < 0:
        raise Invalid(f"must be {what} >= 0, not {value!r}")
    return float(value)


def _seconds(value: object, ctx: Context) -> float:
    return _number(value, "a number of seconds")


def _int_at_least(minimum: int) -> Converter:
    def convert(value: object, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise Invalid(f"must be a whole number >= {minimum}, not {show_value(value)}")
        return value

    return convert


def _max_retries(value: object, ctx: Context) -> int | None:
    return None if value is None else _int_at_least(0)(value, ctx)


def _choice(*options: str) -> Converter:
    def convert(value: object, ctx: Context) -> str:
        if isinstance(value, str) and value in options:
            return value
        hint = did_you_mean(value, options) if isinstance(value, str) else None
        raise Invalid(f"must be one of {', '.join(options)}, not {show_value(value)}", hint)

    return convert


def _signal(value: object, ctx: Context) -> int:
    """A signal name (``SIGINT``, ``INT``, ``int``) or number, checked against signal.Signals."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Invalid(f"must be a signal name or number, not {show_value(value)}")
    if isinstance(value, int):
        if value not in {s.value for s in signal.Signals}:
            raise Invalid(f"unknown signal number {value}")
        return value
    name = value.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in signal.Signals.__members__:
        raise Invalid(f"unknown signal {value!r}", did_you_mean(name, signal.Signals.__members__))
    return int(signal.Signals[name])


def _optional_signal(value: object, ctx: Context) -> int | None:
    return None if value is None else _signal(value, ctx)


def _text(value: object, what: str = "a string") -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise Invalid(f"must be {what}, not {show_value(value)}")
    if not value.strip():
        raise Invalid("must not be empty")
    if "\0" in value:
        raise Invalid("must not contain a NUL character")
    return value


def _path(value: object, ctx: Context) -> str:
    """A path made absolute against the base directory, ``~`` expanded."""
    path = os.path.expanduser(_text(value, "a path"))
    return os.path.normpath(os.path.join(ctx.base_dir, path))


def _paths(value: object, ctx: Context) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_path(v, ctx) for v in value)
    if not isinstance(value, (str, os.PathLike)):
        raise Invalid(f"must be a path or a list of paths, not {show_value(value)}")
    return (_path(value, ctx),)


def _program(value: str, ctx: Context) -> str:
    """A program with a ``/`` becomes absolute; a bare name is looked up at spawn time."""
    program = os.path.expanduser(value)
    if "/" in program:
        return os.path.normpath(os.path.join(ctx.base_dir, program))
    return program


def _argv(value: object, ctx: Context) -> tuple[str, ...]:
    """A command: a string split like a shell (never run by one) or a list of strings."""
    if isinstance(value, str):
        argv = _split(value)
    elif isinstance(value, (list, tuple)):
        argv = [_arg(v) for v in value]
    else:
        raise Invalid(f"must be a string or a list of strings, not {show_value(value)}")
    if not argv or not argv[0].strip():
        raise Invalid("must not be empty")
    return (_program(argv[0], ctx), *argv[1:])


# Shell characters a native command string may hold: shlex gives them one literal meaning.
_SPLIT_SAFE = frozenset({"*", "?", "[", "~", "#", "unterminated quote"})


def _arg(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise Invalid(f"must be a list of strings, not one holding {show_value(value)}")
    if "\0" in value:
        raise Invalid("must not contain a NUL character")
    return value


def _split(command: str) -> list[str]:
    refused, needs_sh = shell_syntax(command)
    found = [s for s in refused + needs_sh if s not in _SPLIT_SAFE]
    if found:
        hint = "a command string is split into arguments, never run by a shell: use a list, or a script"
        raise Invalid(f"uses shell syntax {show_constructs(found)}", hint)
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise Invalid(f"cannot be split into arguments: {exc}") from None


def _process_name(value: object, ctx: Context) -> str:
    return _program(_text(value), ctx)


def _env(value: object, ctx: Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise Invalid(f"must be a mapping of variable names to values, not {show_value(value)}")
    pairs = []
    for name, val in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise Invalid(f"variable name {name!r} must be a non-empty string without '='")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise Invalid(f"the value of {name} must be a string or a number, not {show_value(val)}")
        if "\0" in str(val):
            raise Invalid(f"the value of {name} must not contain a NUL character")
        pairs.append((name, str(val)))
    return tuple(sorted(pairs))


def _env_names(value: object, ctx: Context) -> tuple[str, ...]:
    """``env_keep``: a list of variable names."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise Invalid(f"must be a list of variable names such as ['DATABASE_URL'], not {show_value(value)}")
    names = []
    for name in value:
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise Invalid(f"variable name {show_value(name)} must be a non-empty string without '='")
        names.append(name)
    return tuple(sorted(set(names)))


def _account(kind: str) -> Converter:
    """``user``/``group``: a name that must exist, or a numeric id; kept as a string."""

    def convert(value: object, ctx: Context) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise Invalid(f"must be a {kind} name or id, not {show_value(value)}")
        if isinstance(value, int):
            if value < 0:
                raise Invalid(f"must be a {kind} name or id, not {value}")
            return str(value)
        name = _text(value).strip()
        if not name.isdigit() and sys.platform != "win32":
            try:
                (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
            except KeyError:
                raise Invalid(f"unknown {kind} {name!r}") from None
        return name

    return convert


def _umask(value: object, ctx: Context) -> int:
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if digits and set(digits) <= set("01234567"):
            value = int(digits, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise Invalid(f"must be an octal mode such as '022' or 0o022, not {show_value(value)}")
    return value


def _log(value: object, ctx: Context) -> str:
    if value in ("prefix", "raw", "runtime"):
        return str(value)
    return _path(value, ctx)


def _names(value: object, ctx: Context) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        hint = f"write [{value!r}]" if isinstance(value, str) else None
        raise Invalid(f"must be a list of daemon names, not {show_value(value)}", hint)
    for item in value:
        if not isinstance(item, str) or not item:
            raise Invalid(f"must be a list of daemon names, not one holding {show_value(item)}")
    return tuple(dict.fromkeys(value))


# --- ready and leader ----------------------------------------------------------------------------

PROBES = ("tcp", "http", "command", "postgres")


def _ready(value: object, ctx: Context) -> ReadyProbe:
    if not isinstance(value, Mapping):
        raise Invalid(f"must be a mapping such as {{'tcp': 'host:port'}}, not {show_value(value)}")
    for key in value:
        if key not in PROBES:
            hint = did_you_mean(key, PROBES) if isinstance(key, str) else None
            raise Invalid(f"unknown probe {key!r}", hint or f"use one of {', '.join(PROBES)}")
    if len(value) != 1:
        given = f", not {len(value)} ({', '.join(value)})" if value else ""
        raise Invalid(f"needs exactly one of {', '.join(PROBES)}{given}")
    ((kind, probe),) = value.items()
    if kind == "tcp":
        return ReadyProbe(tcp=_host_port(probe))
    if kind == "http":
        return ReadyProbe(http=_http_url(probe))
    if kind == "command":
        return ReadyProbe(command=_argv(probe, ctx))
    if probe is not True:
        raise Invalid(f"postgres must be true, not {show_value(probe)}")
    return ReadyProbe(postgres=True)


def _host_port(value: object) -> tuple[str, int]:
    text = value if isinstance(value, str) else ""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit():
        raise Invalid(f"tcp must be 'host:port', not {show_value(value)}")
    if not 1 <= int(port) <= 65535:
        raise Invalid(f"tcp port must be 1-65535, not {int(port)}")
    return host, int(port)


def _http_url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        raise Invalid(f"http must be an http:// or https:// URL, not {show_value(value)}")
    return value


def _leader(value: object, ctx: Context) -> LeaderSpec:
    if not isinstance(value, Mapping):
        raise Invalid(f"must be a mapping such as {{'lock': 'beat'}}, not {show_value(value)}")
    keys = ("lock", "backend", "lease", "renew", "on_lead", "on_unlead")
    for key in value:
        if key not in keys:
            raise Invalid(f"unknown leader key {key!r}", did_you_mean(key, keys))
    lock = value.get("lock")
    if not isinstance(lock, str) or not LOCK_RE.match(lock):
        what = f"{show_value(lock)} is not a lock name" if "lock" in value else "needs a 'lock' name"
        raise Invalid(what, "use letters, digits, '_', '.', ':', '@' and '-'")
    backend = value.get("backend", ctx.leader_backend)
    problem = leader_backend_problem(backend)
    if problem:
        raise Invalid(problem, BACKEND_HINT)
    lease = _positive("lease", value.get("lease", 15.0))
    renew = _positive("renew", value.get("renew", 3.0))
    hooks = {k: _argv(value[k], ctx) for k in ("on_lead", "on_unlead") if value.get(k) is not None}
    missing = client_problem(client_kind(str(backend)))  # the lock holder would die at once
    if missing:
        raise Invalid(*missing, code="E003")
    return LeaderSpec(lock=lock, backend=str(backend), lease=lease, renew=renew, **hooks)


def _positive(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SECONDS:
        raise Invalid(f"{what} must be a number of seconds > 0, not {show_value(value)}")
    return float(value)


CONVERTERS: dict[str, Converter] = {
    "command": _argv,
    "pidfile": _path,
    "daemonize": _bool,
    "start_timeout": _seconds,
    "process_name": _process_name,
    "control": _bool,
    "stop_signal": _signal,
    "stop_timeout": _seconds,
    "on_reload": _choice("restart", "signal", "keep"),
    "reload_signal": _signal,
    "reload_stop_signal": _optional_signal,
    "touch": _paths,
    "env": _env,
    "env_clear": _bool,
    "env_keep": _env_names,
    "cwd": _path,
    "user": _account("user"),
    "group": _account("group"),
    "umask": _umask,
    "stdin": _bool,
    "log": _log,
    "log_max_bytes": _int_at_least(1),
    "log_backups": _int_at_least(0),
    "restart": _choice("always", "on-failure", "never"),
    "max_retries": _max_retries,
    "min_uptime": _seconds,
    "max_backoff": _seconds,
    "ready": _ready,
    "ready_timeout": _seconds,
    "depends_on": _names,
    "autostart": _bool,
    "leader": _leader,
    "shell": _bool,  # only from uWSGI lines (see _key)
}

DECLARATION_KEYS = tuple(k for k in CONVERTERS if k != "shell")


def show_value(value: object) -> str:
    """A value as shown in a message: repr, password values masked, at most 60 characters."""
    text = repr(redact(value)) if isinstance(value, str) else redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: object) -> str:
    return type(value).__name__
