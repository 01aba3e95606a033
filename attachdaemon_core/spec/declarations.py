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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.leader.rules import backend_problem as leader_backend_problem
from attachdaemon_core.leader.rules import check_arithmetic
from attachdaemon_core.spec import key_rules, limits, procfile, self_report
from attachdaemon_core.spec.checks import check_specs
from attachdaemon_core.spec.converters import CONVERTERS as KEY_CONVERTERS
from attachdaemon_core.spec.converters import (
    LEADER_STOP_TIMEOUT,
    NAME_RE,
    Context,
    Converter,
    Invalid,
    type_name,
)
from attachdaemon_core.spec.dependencies import convert_depends_on, dependency_problems, split_dependencies
from attachdaemon_core.spec.envfile import read_env_files
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Dependency, LeaderSpec, Problem
from attachdaemon_core.spec.oneshots import after_line_hooks, oneshot_defaults, oneshot_problems
from attachdaemon_core.spec.schedule_keys import JOB_CONVERTERS, job_defaults
from attachdaemon_core.spec.uwsgi_config import read_file
from attachdaemon_core.spec.uwsgi_cron import list_harakiri
from attachdaemon_core.spec.uwsgi_file import is_uwsgi_file
from attachdaemon_core.spec.uwsgi_lines import derive_names, parse_uwsgi_line

__all__ = [
    "DECLARATION_KEYS",
    "check_specs",
    "did_you_mean",
    "leader_backend_problem",
    "parse_declarations",
]


# Every key's converter: the daemons' (spec/converters.py), the jobs' (spec/schedule_keys.py),
# depends_on's (spec/dependencies.py), self-reported readiness's and the limits' (own modules).
CONVERTERS: dict[str, Converter] = {
    **KEY_CONVERTERS,
    **JOB_CONVERTERS,
    "depends_on": convert_depends_on,
    **self_report.CONVERTERS,
    **limits.CONVERTERS,
}
KEYS = CONVERTERS
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
    env_defaults: Mapping[str, str] | None = None,
) -> tuple[DaemonSpec, ...]:
    """Validate declarations into specs, in order, or raise one ConfigError with every problem.

    ``decls`` is a mapping name -> declaration (a dict or one uWSGI line), a list of uWSGI lines,
    a list mixing lines and dicts carrying ``name``, the path of a uWSGI config file
    (``uwsgi.ini[:section]``, ``.yaml``, ``.yml``, ``.json``; docs/uwsgi-files.md), or the path of a
    Procfile (docs/procfile.md). Relative paths are made absolute against ``base_dir`` (default:
    the current directory). ``env_defaults`` (a top-level ``env_file``'s variables) go to every
    daemon, under its own.
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
    elif isinstance(decls, (str, os.PathLike)) and procfile.is_procfile(os.fspath(decls)):
        decls, env_defaults = procfile.read_declarations(os.fspath(decls), base, problems)
    entries = _entries(decls, leader_backend, source)
    specs: list[DaemonSpec] = []
    graph: dict[str, tuple[Dependency, ...]] = {}  # name -> depends_on, also for failed declarations
    seen: set[str] = set()
    for entry in entries:
        problems += _name_problems(entry, seen) + entry.pending
        if entry.decl is not None:
            ctx = Context(entry.name, base, leader_backend, entry.from_line)
            spec, graph[entry.name] = _spec({**shared, **entry.decl}, ctx, problems, env_defaults or {})
            if spec and entry.notes:  # shown by check_specs, named as the daemon finally is
                notes = tuple(dataclasses.replace(p, daemon=entry.name) for p in entry.notes)
                spec = dataclasses.replace(spec, extra={**spec.extra, "notes": notes})
            specs += [spec] if spec else []
    never_complete = {s.name for s in specs if s.restart == "always" and not s.oneshot}
    problems += dependency_problems(graph, {e.name for e in entries if e.name}, never_complete)
    if problems:
        raise ConfigError(problems, source)
    if file_notes and specs:  # a uWSGI file's own notes (W007, W008), shown once by check_specs
        first = specs[0]
        notes = (*file_notes, *first.extra.get("notes", ()))
        specs[0] = dataclasses.replace(first, extra={**first.extra, "notes": notes})
    return tuple(after_line_hooks(specs, {e.name for e in entries if e.from_line}))


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
    decl: Mapping[Any, object], ctx: Context, problems: list[Problem], env_defaults: Mapping[str, str]
) -> tuple[DaemonSpec | None, tuple[Dependency, ...]]:
    """Convert every key, apply the rules tying keys together, build the spec; also its depends_on."""
    own: list[tuple[str, str, str | None, str]] = []  # key, message, hint, code
    fields: dict[str, Any] = {}
    for key, value in decl.items():
        if key == "name":
            continue
        try:
            name = _key(key, ctx)
            fields[name] = KEYS[name](value, ctx)
        except Invalid as exc:
            own.append((str(key), exc.message, exc.hint, exc.code))
    if "command" not in decl:
        own.append(("command", "is required", None, "E001"))
    if env_defaults or "env_file" in fields:  # docs/declarations.md, "Env files": env wins
        from_files, errors = read_env_files(fields.pop("env_file", ()))
        own += [("env_file", e.message, e.hint, "E001") for e in errors]
        fields["env"] = tuple(sorted({**env_defaults, **from_files, **dict(fields.get("env", ()))}.items()))
    bad = {o[0] for o in own}
    own += [(k, m, h, "E001") for k, m, h in _combined(fields, bad) + oneshot_problems(decl, fields, bad)]
    problems += [Problem(m, daemon=ctx.name, key=k, hint=h, code=c) for k, m, h, c in own]
    depends_on = split_dependencies(fields)
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
    if key not in KEYS:
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
    """The rules that tie keys together (spec/key_rules.py) and the leader's lease arithmetic,
    skipped when a key they need was itself invalid."""
    found = key_rules.check(key_rules.RULES, fields, bad)
    leader = fields.get("leader")
    if isinstance(leader, LeaderSpec) and "stop_timeout" not in bad:
        found += _leader_arithmetic(leader, fields.get("stop_timeout", LEADER_STOP_TIMEOUT))
    rules = (*key_rules.JOB_RULES, *key_rules.SELF_REPORT_RULES, *key_rules.LIMIT_RULES)
    return found + key_rules.check(rules, fields, bad)


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
        **oneshot_defaults(fields),
        **job_defaults(fields),
    }
    return {**defaults, **fields}
