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
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.leader.rules import backend_problem as leader_backend_problem
from attachdaemon_core.leader.rules import check_arithmetic
from attachdaemon_core.spec.checks import check_specs
from attachdaemon_core.spec.converters import (
    CONVERTERS as DAEMON_CONVERTERS,
)
from attachdaemon_core.spec.converters import (
    LEADER_STOP_TIMEOUT,
    NAME_RE,
    Context,
    Invalid,
    type_name,
)
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec, Problem, ReadyProbe
from attachdaemon_core.spec.schedule_keys import JOB_CONVERTERS, job_defaults, job_problems
from attachdaemon_core.spec.uwsgi_config import read_file
from attachdaemon_core.spec.uwsgi_cron import list_harakiri
from attachdaemon_core.spec.uwsgi_file import is_uwsgi_file
from attachdaemon_core.spec.uwsgi_lines import derive_names, parse_uwsgi_line

if sys.platform != "win32":
    pass

__all__ = [
    "DECLARATION_KEYS",
    "check_specs",
    "did_you_mean",
    "leader_backend_problem",
    "parse_declarations",
]


CONVERTERS = {**DAEMON_CONVERTERS, **JOB_CONVERTERS}
DECLARATION_KEYS = tuple(k for k in CONVERTERS if k != "shell")

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
    a list mixing lines and dicts carrying ``name``, or the path of a uWSGI config file
    (``uwsgi.ini[:section]``, ``.yaml``, ``.yml``, ``.json``; docs/uwsgi-files.md). Relative
    paths are made absolute against ``base_dir`` (default: the current directory).
    """
    problems: list[Problem] = []
    base = os.path.abspath(base_dir if base_dir is not None else os.getcwd())
    shared: dict[str, object] = {}  # what a uWSGI file gives all its daemons: env, cwd
    file_notes: list[Problem] = []
    if isinstance(decls, (str, os.PathLike)) and is_uwsgi_file(os.fspath(decls)):
        found = read_file(os.fspath(decls), base)
        problems += found.problems
        decls, file_notes, base = found.lines, found.notes, found.cwd or base
        shared = {k: v for k, v in (("env", found.env), ("cwd", found.cwd)) if v}
    entries = _entries(decls, leader_backend, source)
    specs: list[DaemonSpec] = []
    graph: dict[str, tuple[str, ...]] = {}  # name -> depends_on, also for declarations that failed
    seen: set[str] = set()
    for entry in entries:
        problems += _name_problems(entry, seen) + entry.pending
        if entry.decl is not None:
            ctx = Context(entry.name, base, leader_backend, entry.from_line)
            spec, graph[entry.name] = _spec({**shared, **entry.decl}, ctx, problems)
            if spec and entry.notes:  # shown by check_specs, named as the daemon finally is
                notes = tuple(dataclasses.replace(p, daemon=entry.name) for p in entry.notes)
                spec = dataclasses.replace(spec, extra={**spec.extra, "notes": notes})
            specs += [spec] if spec else []
    problems += _dependency_problems(graph, {e.name for e in entries if e.name})
    if problems:
        raise ConfigError(problems, source)
    if file_notes and specs:  # a uWSGI file's own notes (W007, W008), shown once by check_specs
        first = specs[0]
        notes = (*file_notes, *first.extra.get("notes", ()))
        specs[0] = dataclasses.replace(first, extra={**first.extra, "notes": notes})
    return tuple(specs)


# --- the outer shape -----------------------------------------------------------------------------


def _entries(decls: object, leader_backend: str, source: str) -> list[_Entry]:
    if isinstance(decls, Mapping):
        return [_mapping_entry(name, decl, leader_backend) for name, decl in decls.items()]
    if isinstance(decls, (list, tuple)):
        items, harakiri, bad = list_harakiri(list(decls))  # uWSGI's cron-harakiri: a list-wide default
        entries = [_list_entry(i, item, leader_backend, harakiri) for i, item in enumerate(items, 1)]
        entries += [_Entry("", None, pending=[Problem(message)]) for message in bad]
        _name_lines(entries)
        return entries
    shape = "a mapping of name -> declaration, or a list of uWSGI lines"
    hint = (
        "wrap a single uWSGI line in a list, or name a uWSGI file (.ini, .yaml, .json)"
        if isinstance(decls, str)
        else None
    )
    raise ConfigError([Problem(f"must be {shape}, not {type_name(decls)}", hint=hint)], source)


def _mapping_entry(name: object, decl: object, leader_backend: str) -> _Entry:
    if not isinstance(name, str):
        return _failed("", f"daemon names must be strings, not {type_name(name)} {name!r}")
    if isinstance(decl, str):
        return _line_entry(decl, name, leader_backend)
    if not isinstance(decl, Mapping):
        return _failed(name, f"must be a mapping of keys or a uWSGI line, not {type_name(decl)}", daemon=name)
    if "name" in decl and decl["name"] != name:
        message = f"{decl['name']!r} differs from the name it is declared under"
        return _failed(name, message, daemon=name, key="name")
    return _Entry(name, decl)


def _list_entry(index: int, item: object, leader_backend: str, harakiri: float | None = None) -> _Entry:
    if isinstance(item, str):
        return _line_entry(item, None, leader_backend, harakiri)
    if not isinstance(item, Mapping):
        shape = "a uWSGI line or a mapping with a 'name'"
        return _failed("", f"item {index}: must be {shape}, not {type_name(item)}")
    if not isinstance(item.get("name"), str):
        what = "needs a 'name' key" if "name" not in item else "has a 'name' that is not a string"
        return _failed("", f"item {index}: a declaration in a list {what}")
    return _Entry(str(item["name"]), item)


def _failed(name: str, message: str, daemon: str | None = None, key: str | None = None) -> _Entry:
    return _Entry(name, None, pending=[Problem(message, daemon=daemon, key=key)])


def _line_entry(line: str, name: str | None, leader_backend: str, harakiri: float | None = None) -> _Entry:
    """Parse one uWSGI line; a list's line gets its final name (and problems renamed) later.

    Its ``W`` problems are notes on an accepted line: kept for :func:`check_specs`, never raised.
    """
    decl, problems = parse_uwsgi_line(line, leader_backend=leader_backend, cron_harakiri=harakiri)
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
    decl: Mapping[Any, object], ctx: Context, problems: list[Problem]
) -> tuple[DaemonSpec | None, tuple[str, ...]]:
    """Convert every key, apply the rules tying keys together, build the spec; also its depends_on."""
    own: list[tuple[str, str, str | None, str]] = []  # key, message, hint, code
    fields: dict[str, Any] = {}
    for key, value in decl.items():
        if key == "name":
            continue
        try:
            name = _key(key, ctx)
            fields[name] = CONVERTERS[name](value, ctx)
        except Invalid as exc:
            own.append((str(key), exc.message, exc.hint, exc.code))
    if "command" not in decl:
        own.append(("command", "is required", None, "E001"))
    own += [(k, m, h, "E001") for k, m, h in _combined(fields, {o[0] for o in own})]
    problems += [Problem(m, daemon=ctx.name, key=k, hint=h, code=c) for k, m, h, c in own]
    depends_on: tuple[str, ...] = fields.get("depends_on", ())
    if own:
        return None, depends_on
    return DaemonSpec(name=ctx.name, **_with_defaults(fields)), depends_on


def _key(key: object, ctx: Context) -> str:
    """Accept a known key; refuse others with the key they probably meant."""
    if not isinstance(key, str):
        raise Invalid(f"keys must be strings, not {type_name(key)}")
    if key == "shell" and not ctx.from_line:
        hint = "commands never run through a shell: use a uWSGI line or ['/bin/sh', '-c', …]"
        raise Invalid("unknown key", hint)
    if key not in CONVERTERS:
        raise Invalid("unknown key", _unknown_key_hint(key))
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
    return found + job_problems(fields, bad)


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
        **job_defaults(fields),
    }
    return {**defaults, **fields}


# --- converters: one per key, each returns the DaemonSpec value or raises Invalid ---------------


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
