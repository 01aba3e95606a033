"""A uWSGI config file as declarations: the keys attachdaemon reads, and what it says of the rest.

``ATTACH_DAEMONS = "uwsgi.ini"``, ``attach_daemons = "uwsgi.ini"`` and ``attachdaemon --config
uwsgi.ini`` all come here (docs/uwsgi-files.md). :func:`read_file` reads the file
(:mod:`~attachdaemon_core.spec.uwsgi_file`), resolves its placeholders
(:mod:`~attachdaemon_core.spec.placeholders`) and sorts its options:

- the attach-daemon family and its legion variants become uWSGI lines for the line parser;
- ``env``/``ienv`` (``NAME=VALUE``) are passed to every daemon, as uWSGI's master passes its
  environment on; ``chdir`` is where the daemons run and where their relative paths start;
- the cron family becomes jobs, through the same line parser (docs/declarations.md, "Jobs");
- ``hook-pre-app``-style one-shots are recognised but not yet run (W008);
- every other key is listed once, with its lines, as not ours, ignored (W007), but for a key some
  ``%(…)`` names: that is the file's own placeholder (``pg = $(HOME)/db.pg``).

A placeholder that cannot be resolved in a line attachdaemon uses is an error naming the file and
line; uWSGI would leave it in the value as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from attachdaemon_core.spec.model import Problem
from attachdaemon_core.spec.placeholders import Option, resolve, unknown_magic_hint
from attachdaemon_core.spec.uwsgi_file import END_KEYS, INCLUDES, SET_KEYS, read_options, split_section
from attachdaemon_core.spec.uwsgi_lines import OPTIONS as DAEMON_KEYS

__all__ = ["CRON_KEYS", "ONESHOT_KEYS", "FileDeclarations", "read_file"]

ENV_KEYS = frozenset({"env", "ienv"})
CWD_KEY = "chdir"
CRON_KEYS = frozenset({"cron", "cron2", "unique-cron", "legion-cron", "unique-legion-cron", "cron-harakiri"})
ONESHOT_KEYS = frozenset({"hook-pre-app", "hook-as-user", "exec-pre-app", "exec-as-user"})
# Keys the reader itself acts on while reading (blocks, includes, set-placeholder).
LOGIC_KEYS = frozenset(
    {
        *END_KEYS,
        *INCLUDES,
        *SET_KEYS,
        "for",
        "for-glob",
        "for-times",
        "for-readline",
        "if-env",
        "ifenv",
        "if-not-env",
        "if-opt",
        "if-not-opt",
        "if-exists",
        "ifexists",
        "if-not-exists",
        "if-file",
        "if-not-file",
        "if-dir",
        "ifdir",
        "if-directory",
        "if-not-dir",
        "if-hostname",
        "if-not-hostname",
        "if-reload",
        "if-not-reload",
    }
)
REFERENCE = re.compile(r"%\(([^()]*)\)")
ENV_REFERENCE = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")


@dataclass
class FileDeclarations:
    """What a uWSGI file declares, for :func:`~attachdaemon_core.spec.declarations.parse_declarations`."""

    path: str
    lines: list[str] = field(default_factory=list)  # resolved daemon lines, for parse_uwsgi_line
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    notes: list[Problem] = field(default_factory=list)  # W007, W008: shown by check
    problems: list[Problem] = field(default_factory=list)  # errors: nothing starts


def read_file(spec: str, base_dir: str, environ: Mapping[str, str] | None = None) -> FileDeclarations:
    """Read ``spec`` (``FILE[:SECTION]``, relative to ``base_dir``) into declarations."""
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(split_section(spec)[0])))
    reading = read_options(spec, base_dir, environ)
    out = FileDeclarations(path, problems=[Problem(p) for p in reading.problems])
    # a key some %(…) names is a placeholder of the file's own (pg = $(HOME)/db.pg), not an option
    named = {word for o in reading.options for ref in REFERENCE.findall(o.value) for word in ref.split()}
    resolve(reading.options, environ)
    ignored: dict[str, list[int]] = {}
    for opt in reading.options:
        if opt.key in DAEMON_KEYS or opt.key in CRON_KEYS or opt.key in ENV_KEYS or opt.key == CWD_KEY:
            if _unresolved(opt, out.problems):
                continue
            _use(opt, out)
        elif opt.key in ONESHOT_KEYS:
            out.notes.append(_not_yet(opt))
        elif opt.key not in LOGIC_KEYS and not opt.placeholder and opt.key not in named:
            ignored.setdefault(opt.key, []).append(opt.line)
    if ignored:
        out.notes.append(_ignored(path, ignored))
    if out.cwd is not None:
        out.cwd = os.path.normpath(os.path.join(base_dir, out.cwd))
    return out


def _use(opt: Option, out: FileDeclarations) -> None:
    if opt.key == CWD_KEY:
        out.cwd = opt.value  # uWSGI's chdir: the last one wins
    elif opt.key in ENV_KEYS:
        name, eq, value = opt.value.partition("=")
        if not eq or not name:
            message = f"{opt.where}: {opt.key} = {opt.value!r} is not NAME=VALUE"
            out.problems.append(Problem(message, key=opt.key, hint="unenv removes a variable"))
        else:
            out.env[name] = value
    else:
        # The line parser reads "%%" as "%": the value is final, every "%" in it is literal.
        out.lines.append(f"{opt.key} = {opt.value.replace('%', '%%')}")


def _unresolved(opt: Option, problems: list[Problem]) -> bool:
    """An error for each placeholder of ``opt`` that stayed: a ``$(…)`` that is no variable name is
    shell syntax (uWSGI's /bin/sh runs it), left to the line parser."""
    found = False
    for token in dict.fromkeys(opt.magic_errors):
        problems.append(
            Problem(f"{opt.where}: {token} has no value", key=opt.key, hint=unknown_magic_hint(token))
        )
        found = True
    for ref in dict.fromkeys(opt.unresolved):
        if ref.startswith("$(") and not ENV_REFERENCE.fullmatch(ref):
            continue
        problems.append(Problem(f"{opt.where}: {ref} cannot be resolved", key=opt.key, hint=_hint(ref)))
        found = True
    return found


def _hint(ref: str) -> str:
    inner = ref[2:-1]
    if ref.startswith("$("):
        return f"set the environment variable {inner}, or write the value out"
    if ref.startswith("@("):
        return "the file cannot be read (uWSGI exits); uWSGI's schemes (exec://, http://) are not read"
    return f"no option {inner!r} in the file (uWSGI leaves it as written)"


def _not_yet(opt: Option) -> Problem:
    message = (
        f"{opt.where}: {opt.key} = {opt.value} is a one-shot task: recognised, not yet supported; "
        "it will not run"
    )
    return Problem(message, key=opt.key, hint="run it before starting the server", code="W008")


def _ignored(path: str, ignored: Mapping[str, list[int]]) -> Problem:
    listed = ", ".join(f"{key} (line {', '.join(map(str, lines))})" for key, lines in ignored.items())
    hint = "they configure uWSGI itself; gunicorn and the framework have their own settings"
    return Problem(f"{path}: not ours, ignored: {listed}", hint=hint, code="W007")
