"""Declarations (settings, uWSGI lines) turned into validated DaemonSpecs, all problems at once.

Every host calls :func:`parse_declarations` before anything starts; it either returns specs or
raises one :class:`~attachdaemon_core.spec.ConfigError` listing every problem (docs/declarations.md). Nothing
here runs a process; a leader backend's client package (psycopg, redis-py) is imported to be sure
the lock holder can run (E003), and no message shows a password (see ``redaction``).
:func:`check_specs` adds the warnings a ``check`` command shows.

Sections: the outer shape (mapping or list, names), one declaration's keys (a converter per key),
the rules tying keys together, and dependencies; the ``check`` warnings are in ``checks``.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.leader.rules import BACKEND_HINT, check_arithmetic, client_kind, client_problem
from attachdaemon_core.leader.rules import backend_problem as leader_backend_problem
from attachdaemon_core.spec.checks import check_specs
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec, Problem, ReadyProbe
from attachdaemon_core.spec.redaction import redact
from attachdaemon_core.spec.uwsgi_lines import derive_names, parse_uwsgi_line, shell_syntax, show_constructs

if sys.platform != "win32":
    import grp
    import pwd

__all__ = [
    "DECLARATION_KEYS",
    "check_specs",
    "did_you_mean",
    "leader_backend_problem",
    "parse_declarations",
]

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
LOCK_RE = re.compile(r"[A-Za-z0-9_.:@-]+\Z")
ENV_NAME_RE = re.compile(r"[^=\0]+\Z")
LEADER_STOP_TIMEOUT = 4.0
MAX_SECONDS = 10**9  # about 31 years: larger durations are typos (and may not fit a float)

# Spellings from uWSGI's attach-daemon2, supervisord and habit -> our key.
_ALIASES = {
    "cmd": "command",
    "exec": "command",
    "args": "command",
    "argv": "command",
    "stopsignal": "stop_signal",
    "reloadsignal": "reload_signal",
    "stopwaitsecs": "stop_timeout",
    "chdir": "cwd",
    "directory": "cwd",
    "workdir": "cwd",
    "working_dir": "cwd",
    "uid": "user",
    "gid": "group",
    "freq": "start_timeout",
    "daemon": "daemonize",
    "max_throttle": "max_backoff",
    "notifypid": "on_reload",
    "environment": "env",
    "environ": "env",
    "autorestart": "restart",
    "requires": "depends_on",
    "after": "depends_on",
    "logfile": "log",
}


class _Invalid(Exception):
    """One key's value is wrong; ``message``, ``hint`` and ``code`` become a Problem."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E001") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


@dataclass(frozen=True)
class _Context:
    """What a converter needs besides the value: where relative paths start, the defaults."""

    name: str
    base_dir: str
    leader_backend: str
    from_line: bool


@dataclass
class _Entry:
    """One declaration on its way to a spec; ``decl`` is None when its uWSGI line failed."""

    name: str
    decl: Mapping[Any, object] | None
    from_line: bool = False
    explicit_name: bool = True
    pending: list[Problem] = field(default_factory=list)  # a list line's, until it is named
    notes: list[Problem] = field(default_factory=list)  # warnings on an accepted uWSGI line (W004)


def parse_declarations(
    decls: object,
    *,
    base_dir: str | None = None,
    source: str = "ATTACH_DAEMONS",
    leader_backend: str = "file",
) -> tuple[DaemonSpec, ...]:
    """Validate declarations into specs, in order, or raise one ConfigError with every problem.

    ``decls`` is a mapping name -> declaration (a dict or one uWSGI line), a list of uWSGI lines,
    or a list mixing lines and dicts carrying ``name``. Relative paths are made absolute against
    ``base_dir`` (default: the current directory).
    """
    problems: list[Problem] = []
    entries = _entries(decls, leader_backend, source)
    base = os.path.abspath(base_dir if base_dir is not None else os.getcwd())
    specs: list[DaemonSpec] = []
    graph: dict[str, tuple[str, ...]] = {}  # name -> depends_on, also for declarations that failed
    seen: set[str] = set()
    for entry in entries:
        problems += _name_problems(entry, seen) + entry.pending
        if entry.decl is not None:
            ctx = _Context(entry.name, base, leader_backend, entry.from_line)
            spec, graph[entry.name] = _spec(entry.decl, ctx, problems)
            if spec and entry.notes:  # shown by check_specs, named as the daemon finally is
                notes = tuple(dataclasses.replace(p, daemon=entry.name) for p in entry.notes)
                spec = dataclasses.replace(spec, extra={**spec.extra, "notes": notes})
            specs += [spec] if spec else []
    problems += _dependency_problems(graph, {e.name for e in entries if e.name})
    if problems:
        raise ConfigError(problems, source)
    return tuple(specs)


# --- the outer shape -----------------------------------------------------------------------------


def _entries(decls: object, leader_backend: str, source: str) -> list[_Entry]:
    if isinstance(decls, Mapping):
        return [_mapping_entry(name, decl, leader_backend) for name, decl in decls.items()]
    if isinstance(decls, (list, tuple)):
        entries = [_list_entry(i, item, leader_backend) for i, item in enumerate(decls, 1)]
        _name_lines(entries)
        return entries
    shape = "a mapping of name -> declaration, or a list of uWSGI lines"
    hint = "wrap a single uWSGI line in a list" if isinstance(decls, str) else None
    raise ConfigError([Problem(f"must be {shape}, not {_type(decls)}", hint=hint)], source)


def _mapping_entry(name: object, decl: object, leader_backend: str) -> _Entry:
    if not isinstance(name, str):
        return _failed("", f"daemon names must be strings, not {_type(name)} {name!r}")
    if isinstance(decl, str):
        return _line_entry(decl, name, leader_backend)
    if not isinstance(decl, Mapping):
        return _failed(name, f"must be a mapping of keys or a uWSGI line, not {_type(decl)}", daemon=name)
    if "name" in decl and decl["name"] != name:
        message = f"{decl['name']!r} differs from the name it is declared under"
        return _failed(name, message, daemon=name, key="name")
    return _Entry(name, decl)


def _list_entry(index: int, item: object, leader_backend: str) -> _Entry:
    if isinstance(item, str):
        return _line_entry(item, None, leader_backend)
    if not isinstance(item, Mapping):
        shape = "a uWSGI line or a mapping with a 'name'"
        return _failed("", f"item {index}: must be {shape}, not {_type(item)}")
    if not isinstance(item.get("name"), str):
        what = "needs a 'name' key" if "name" not in item else "has a 'name' that is not a string"
        return _failed("", f"item {index}: a declaration in a list {what}")
    return _Entry(str(item["name"]), item)


def _failed(name: str, message: str, daemon: str | None = None, key: str | None = None) -> _Entry:
    return _Entry(name, None, pending=[Problem(message, daemon=daemon, key=key)])


def _line_entry(line: str, name: str | None, leader_backend: str) -> _Entry:
    """Parse one uWSGI line; a list's line gets its final name (and problems renamed) later.

    Its ``W`` problems are notes on an accepted line: kept for :func:`check_specs`, never raised.
    """
    decl, problems = parse_uwsgi_line(line, leader_backend=leader_backend)
    derived = str(decl.pop("name", ""))
    if name is not None:
        problems = [dataclasses.replace(p, daemon=name) for p in problems]
    errors = [p for p in problems if not p.code.startswith("W")]
    notes = [p for p in problems if p.code.startswith("W")]
    return _Entry(name or derived, None if errors else decl, True, name is not None, errors, notes)


def _name_lines(entries: list[_Entry]) -> None:
    """Name a list's lines (``memcached``, ``memcached-2``) around its explicit names."""
    derived = [e for e in entries if not e.explicit_name]
    taken = {e.name for e in entries if e.explicit_name and e.name}
    for entry, name in zip(derived, derive_names([e.name for e in derived], taken), strict=True):
        entry.name = name
        entry.pending = [dataclasses.replace(p, daemon=name) if p.daemon else p for p in entry.pending]


def _name_problems(entry: _Entry, seen: set[str]) -> list[Problem]:
    if not entry.name and entry.decl is None:  # a broken line or item: its problem says so
        return []
    problems = []
    if not NAME_RE.match(entry.name):
        hint = "use only letters, digits, '_', '.' and '-'"
        problems.append(Problem("invalid name", daemon=entry.name, hint=hint))
    if entry.name in seen:
        problems.append(Problem("declared more than once", daemon=entry.name))
    seen.add(entry.name)
    return problems


# --- one declaration -----------------------------------------------------------------------------


def _spec(
    decl: Mapping[Any, object], ctx: _Context, problems: list[Problem]
) -> tuple[DaemonSpec | None, tuple[str, ...]]:
    """Convert every key, apply the rules tying keys together, build the spec; also its depends_on."""
    own: list[tuple[str, str, str | None, str]] = []  # key, message, hint, code
    fields: dict[str, Any] = {}
    for key, value in decl.items():
        if key == "name":
            continue
        try:
            name = _key(key, ctx)
            fields[name] = _CONVERTERS[name](value, ctx)
        except _Invalid as exc:
            own.append((str(key), exc.message, exc.hint, exc.code))
    if "command" not in decl:
        own.append(("command", "is required", None, "E001"))
    own += [(k, m, h, "E001") for k, m, h in _combined(fields, {o[0] for o in own})]
    problems += [Problem(m, daemon=ctx.name, key=k, hint=h, code=c) for k, m, h, c in own]
    depends_on: tuple[str, ...] = fields.get("depends_on", ())
    if own:
        return None, depends_on
    return DaemonSpec(name=ctx.name, **_with_defaults(fields)), depends_on


def _key(key: object, ctx: _Context) -> str:
    """Accept a known key; refuse others with the key they probably meant."""
    if not isinstance(key, str):
        raise _Invalid(f"keys must be strings, not {_type(key)}")
    if key == "shell" and not ctx.from_line:
        hint = "commands never run through a shell: use a uWSGI line or ['/bin/sh', '-c', …]"
        raise _Invalid("unknown key", hint)
    if key not in _CONVERTERS:
        raise _Invalid("unknown key", _unknown_key_hint(key))
    return key


def _unknown_key_hint(key: str) -> str | None:
    spelled = key.strip().lower().replace("-", "_")
    if spelled in DECLARATION_KEYS:
        return f"did you mean {spelled!r}?"
    if spelled in _ALIASES:
        return f"did you mean {_ALIASES[spelled]!r}?"
    return did_you_mean(spelled, DECLARATION_KEYS)


def _combined(fields: Mapping[str, Any], bad: set[str]) -> list[tuple[str, str, str | None]]:
    """The rules that tie keys together, skipped when a key they need was itself invalid."""
    found: list[tuple[str, str, str | None]] = []
    smart = fields.get("pidfile") is not None
    if fields.get("daemonize") and not smart and "pidfile" not in bad:
        found.append(("daemonize", "needs a pidfile", "the supervisor writes the pid there"))
    if fields.get("process_name") and not smart and "pidfile" not in bad:
        found.append(("process_name", "only applies with a pidfile", None))
    if fields.get("control") and smart:
        hint = "a control daemon is attached: drop pidfile or control"
        found.append(("control", "a control daemon cannot have a pidfile", hint))
    if smart and fields.get("log") == "prefix":
        hint = "use a log path, 'runtime' (the default) or 'raw'"
        found.append(
            ("log", "'prefix' pipes output through the supervisor, which a smart daemon outlives", hint)
        )
    ready = fields.get("ready")
    if isinstance(ready, ReadyProbe) and ready.postgres and not smart and "pidfile" not in bad:
        hint = "set pidfile to the data directory's postmaster.pid"
        found.append(("ready", "the postgres probe needs a pidfile", hint))
    if fields.get("env_keep") and not fields.get("env_clear") and "env_clear" not in bad:
        hint = "add env_clear = true, or drop env_keep: without it the daemon gets the whole environment"
        found.append(("env_keep", "only applies with env_clear", hint))
    leader = fields.get("leader")
    if isinstance(leader, LeaderSpec) and "stop_timeout" not in bad:
        found += _leader_arithmetic(leader, fields.get("stop_timeout", LEADER_STOP_TIMEOUT))
    return found


def _leader_arithmetic(leader: LeaderSpec, stop: float) -> list[tuple[str, str, str | None]]:
    """The lease must outlast three renew periods plus a full stop plus a margin (docs/declarations.md;
    the rule the lock holder enforces too: :func:`attachdaemon_core.leader.rules.check_arithmetic`)."""
    problem = check_arithmetic(leader.lease, leader.renew, stop)
    return [("leader", problem, "raise lease, or lower renew or stop_timeout")] if problem else []


def _with_defaults(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on the kind (docs/declarations.md): smart, control, leader."""
    smart = fields.get("pidfile") is not None
    defaults = {
        "on_reload": "keep" if smart else "restart",
        "log": "runtime" if smart else "prefix",
        "restart": "never" if fields.get("control") else "always",
        "stop_timeout": LEADER_STOP_TIMEOUT if fields.get("leader") else 10.0,
    }
    return {**defaults, **fields}


# --- converters: one per key, each returns the DaemonSpec value or raises _Invalid ---------------

Converter = Callable[[object, _Context], Any]


def _bool(value: object, ctx: _Context) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
        boolean = "true" if word in {"true", "yes", "on", "1"} else "false"
        hint = f"use the boolean {boolean}, not a string"
        raise _Invalid(f"must be true or false, not the string {value!r}", hint)
    raise _Invalid(f"must be true or false, not {_show(value)}")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = "write a plain number, without quotes or unit" if isinstance(value, str) else None
        raise _Invalid(f"must be {what}, not {_show(value)}", hint)
    if not value <= MAX_SECONDS:  # also refuses nan, inf and ints too large for a float
        raise _Invalid(f"must be {what} up to {MAX_SECONDS}, not {_show(value)}")
    if value < 0:
        raise _Invalid(f"must be {what} >= 0, not {value!r}")
    return float(value)


def _seconds(value: object, ctx: _Context) -> float:
    return _number(value, "a number of seconds")


def _int_at_least(minimum: int) -> Converter:
    def convert(value: object, ctx: _Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Invalid(f"must be a whole number >= {minimum}, not {_show(value)}")
        return value

    return convert


def _max_retries(value: object, ctx: _Context) -> int | None:
    return None if value is None else _int_at_least(0)(value, ctx)


def _choice(*options: str) -> Converter:
    def convert(value: object, ctx: _Context) -> str:
        if isinstance(value, str) and value in options:
            return value
        hint = did_you_mean(value, options) if isinstance(value, str) else None
        raise _Invalid(f"must be one of {', '.join(options)}, not {_show(value)}", hint)

    return convert


def _signal(value: object, ctx: _Context) -> int:
    """A signal name (``SIGINT``, ``INT``, ``int``) or number, checked against signal.Signals."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Invalid(f"must be a signal name or number, not {_show(value)}")
    if isinstance(value, int):
        if value not in {s.value for s in signal.Signals}:
            raise _Invalid(f"unknown signal number {value}")
        return value
    name = value.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in signal.Signals.__members__:
        raise _Invalid(f"unknown signal {value!r}", did_you_mean(name, signal.Signals.__members__))
    return int(signal.Signals[name])


def _optional_signal(value: object, ctx: _Context) -> int | None:
    return None if value is None else _signal(value, ctx)


def _text(value: object, what: str = "a string") -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _Invalid(f"must be {what}, not {_show(value)}")
    if not value.strip():
        raise _Invalid("must not be empty")
    if "\0" in value:
        raise _Invalid("must not contain a NUL character")
    return value


def _path(value: object, ctx: _Context) -> str:
    """A path made absolute against the base directory, ``~`` expanded."""
    path = os.path.expanduser(_text(value, "a path"))
    return os.path.normpath(os.path.join(ctx.base_dir, path))


def _paths(value: object, ctx: _Context) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_path(v, ctx) for v in value)
    if not isinstance(value, (str, os.PathLike)):
        raise _Invalid(f"must be a path or a list of paths, not {_show(value)}")
    return (_path(value, ctx),)


def _program(value: str, ctx: _Context) -> str:
    """A program with a ``/`` becomes absolute; a bare name is looked up at spawn time."""
    program = os.path.expanduser(value)
    if "/" in program:
        return os.path.normpath(os.path.join(ctx.base_dir, program))
    return program


def _argv(value: object, ctx: _Context) -> tuple[str, ...]:
    """A command: a string split like a shell (never run by one) or a list of strings."""
    if isinstance(value, str):
        argv = _split(value)
    elif isinstance(value, (list, tuple)):
        argv = [_arg(v) for v in value]
    else:
        raise _Invalid(f"must be a string or a list of strings, not {_show(value)}")
    if not argv or not argv[0].strip():
        raise _Invalid("must not be empty")
    return (_program(argv[0], ctx), *argv[1:])


# Shell characters a native command string may hold: shlex gives them one literal meaning.
_SPLIT_SAFE = frozenset({"*", "?", "[", "~", "#", "unterminated quote"})


def _arg(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _Invalid(f"must be a list of strings, not one holding {_show(value)}")
    if "\0" in value:
        raise _Invalid("must not contain a NUL character")
    return value


def _split(command: str) -> list[str]:
    refused, needs_sh = shell_syntax(command)
    found = [s for s in refused + needs_sh if s not in _SPLIT_SAFE]
    if found:
        hint = "a command string is split into arguments, never run by a shell: use a list, or a script"
        raise _Invalid(f"uses shell syntax {show_constructs(found)}", hint)
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise _Invalid(f"cannot be split into arguments: {exc}") from None


def _process_name(value: object, ctx: _Context) -> str:
    return _program(_text(value), ctx)


def _env(value: object, ctx: _Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a mapping of variable names to values, not {_show(value)}")
    pairs = []
    for name, val in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise _Invalid(f"variable name {name!r} must be a non-empty string without '='")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise _Invalid(f"the value of {name} must be a string or a number, not {_show(val)}")
        if "\0" in str(val):
            raise _Invalid(f"the value of {name} must not contain a NUL character")
        pairs.append((name, str(val)))
    return tuple(sorted(pairs))


def _env_names(value: object, ctx: _Context) -> tuple[str, ...]:
    """``env_keep``: a list of variable names."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _Invalid(f"must be a list of variable names such as ['DATABASE_URL'], not {_show(value)}")
    names = []
    for name in value:
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise _Invalid(f"variable name {_show(name)} must be a non-empty string without '='")
        names.append(name)
    return tuple(sorted(set(names)))


def _account(kind: str) -> Converter:
    """``user``/``group``: a name that must exist, or a numeric id; kept as a string."""

    def convert(value: object, ctx: _Context) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _Invalid(f"must be a {kind} name or id, not {_show(value)}")
        if isinstance(value, int):
            if value < 0:
                raise _Invalid(f"must be a {kind} name or id, not {value}")
            return str(value)
        name = _text(value).strip()
        if not name.isdigit() and sys.platform != "win32":
            try:
                (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
            except KeyError:
                raise _Invalid(f"unknown {kind} {name!r}") from None
        return name

    return convert


def _umask(value: object, ctx: _Context) -> int:
    if isinstance(value, str):
        digits = value.strip().lower().removeprefix("0o")
        if digits and set(digits) <= set("01234567"):
            value = int(digits, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise _Invalid(f"must be an octal mode such as '022' or 0o022, not {_show(value)}")
    return value


def _log(value: object, ctx: _Context) -> str:
    if value in ("prefix", "raw", "runtime"):
        return str(value)
    return _path(value, ctx)


def _names(value: object, ctx: _Context) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        hint = f"write [{value!r}]" if isinstance(value, str) else None
        raise _Invalid(f"must be a list of daemon names, not {_show(value)}", hint)
    for item in value:
        if not isinstance(item, str) or not item:
            raise _Invalid(f"must be a list of daemon names, not one holding {_show(item)}")
    return tuple(dict.fromkeys(value))


# --- ready and leader ----------------------------------------------------------------------------

PROBES = ("tcp", "http", "command", "postgres")


def _ready(value: object, ctx: _Context) -> ReadyProbe:
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a mapping such as {{'tcp': 'host:port'}}, not {_show(value)}")
    for key in value:
        if key not in PROBES:
            hint = did_you_mean(key, PROBES) if isinstance(key, str) else None
            raise _Invalid(f"unknown probe {key!r}", hint or f"use one of {', '.join(PROBES)}")
    if len(value) != 1:
        given = f", not {len(value)} ({', '.join(value)})" if value else ""
        raise _Invalid(f"needs exactly one of {', '.join(PROBES)}{given}")
    ((kind, probe),) = value.items()
    if kind == "tcp":
        return ReadyProbe(tcp=_host_port(probe))
    if kind == "http":
        return ReadyProbe(http=_http_url(probe))
    if kind == "command":
        return ReadyProbe(command=_argv(probe, ctx))
    if probe is not True:
        raise _Invalid(f"postgres must be true, not {_show(probe)}")
    return ReadyProbe(postgres=True)


def _host_port(value: object) -> tuple[str, int]:
    text = value if isinstance(value, str) else ""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit():
        raise _Invalid(f"tcp must be 'host:port', not {_show(value)}")
    if not 1 <= int(port) <= 65535:
        raise _Invalid(f"tcp port must be 1-65535, not {int(port)}")
    return host, int(port)


def _http_url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        raise _Invalid(f"http must be an http:// or https:// URL, not {_show(value)}")
    return value


def _leader(value: object, ctx: _Context) -> LeaderSpec:
    if not isinstance(value, Mapping):
        raise _Invalid(f"must be a mapping such as {{'lock': 'beat'}}, not {_show(value)}")
    keys = ("lock", "backend", "lease", "renew", "on_lead", "on_unlead")
    for key in value:
        if key not in keys:
            raise _Invalid(f"unknown leader key {key!r}", did_you_mean(key, keys))
    lock = value.get("lock")
    if not isinstance(lock, str) or not LOCK_RE.match(lock):
        what = f"{_show(lock)} is not a lock name" if "lock" in value else "needs a 'lock' name"
        raise _Invalid(what, "use letters, digits, '_', '.', ':', '@' and '-'")
    backend = value.get("backend", ctx.leader_backend)
    problem = leader_backend_problem(backend)
    if problem:
        raise _Invalid(problem, BACKEND_HINT)
    lease = _positive("lease", value.get("lease", 15.0))
    renew = _positive("renew", value.get("renew", 3.0))
    hooks = {k: _argv(value[k], ctx) for k in ("on_lead", "on_unlead") if value.get(k) is not None}
    missing = client_problem(client_kind(str(backend)))  # the lock holder would die at once
    if missing:
        raise _Invalid(*missing, code="E003")
    return LeaderSpec(lock=lock, backend=str(backend), lease=lease, renew=renew, **hooks)


def _positive(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SECONDS:
        raise _Invalid(f"{what} must be a number of seconds > 0, not {_show(value)}")
    return float(value)


_CONVERTERS: dict[str, Converter] = {
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

DECLARATION_KEYS = tuple(k for k in _CONVERTERS if k != "shell")


def _show(value: object) -> str:
    """A value as shown in a message: repr, password values masked, at most 60 characters."""
    text = repr(redact(value)) if isinstance(value, str) else redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _type(value: object) -> str:
    return type(value).__name__


# --- dependencies --------------------------------------------------------------------------------


def _dependency_problems(graph: Mapping[str, Sequence[str]], names: set[str]) -> list[Problem]:
    """Unknown names, self-dependencies and cycles, in declaration order."""
    problems = []
    for name, deps in graph.items():
        for dep in deps:
            if dep == name:
                problems.append(Problem("a daemon cannot depend on itself", name, "depends_on"))
            elif dep not in names:
                hint = did_you_mean(dep, sorted(names - {name}))
                problems.append(Problem(f"unknown daemon {dep!r}", name, "depends_on", hint))
    for cycle in _cycles(graph):
        message = "dependency cycle " + " -> ".join(cycle)
        problems.append(Problem(message, daemon=cycle[0], key="depends_on"))
    return problems


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each dependency cycle once, starting and ending at its earliest-declared daemon."""
    order = {name: i for i, name in enumerate(graph)}
    edges = {name: [d for d in deps if d in order and d != name] for name, deps in graph.items()}
    done: set[str] = set()
    found: dict[frozenset[str], list[str]] = {}

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :]
            i = cycle.index(min(cycle, key=order.__getitem__))
            found.setdefault(frozenset(cycle), [*cycle[i:], *cycle[:i], cycle[i]])
            return
        if name in done:
            return
        for dep in edges[name]:
            visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    return list(found.values())
