"""A Procfile as declarations: each ``name: command`` line an attached daemon (docs/procfile.md).

``attachdaemon --config Procfile``, ``ATTACH_DAEMONS = "Procfile"`` and ``attach_daemons =
"Procfile"`` come here: a file named ``Procfile``, ``Procfile.NAME`` (``Procfile.dev``) or
``NAME.procfile``. The format is the one foreman and honcho read: a line is a process type (letters,
digits, ``_`` and ``-``), a colon and the command; blank lines and ``#`` comments are skipped. Where
they silently skip any other line, it is an error here naming the line, like every bad input.

As under honcho and foreman, the commands run in the Procfile's directory; a ``.env`` beside it,
when there is one, gives every daemon its variables (:mod:`~attachdaemon_core.spec.envfile`); and
each daemon gets ``PORT``: the base port (``PORT`` from that ``.env``, else from the environment,
else 5000) plus 100 for each line before it. A command without shell syntax runs directly; one with
``$VAR``, redirections or globs runs as ``/bin/sh -c "exec …"``, so the program itself is watched; one
with ``&&``, ``;`` or a pipe runs as ``/bin/sh -c …``, where the shell is the daemon (honcho runs
every line through a shell).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from attachdaemon_core.spec.envfile import read_env_files
from attachdaemon_core.spec.model import Problem
from attachdaemon_core.spec.uwsgi_command import command_fields, shell_syntax
from attachdaemon_core.spec.uwsgi_state import LineError

__all__ = ["DEFAULT_PORT", "is_procfile", "read_declarations"]

DEFAULT_PORT = 5000
PORT_STEP = 100  # honcho and foreman: web 5000, worker 5100, …
LINE = re.compile(r"([A-Za-z0-9_-]+):[ \t]*(\S.*)\Z")
NOT_PROCFILES = (".toml", ".ini", ".yaml", ".yml", ".json", ".py")


def is_procfile(path: str) -> bool:
    """``Procfile``, ``Procfile.dev`` or ``web.procfile`` (not ``Procfile.toml``)."""
    name = os.path.basename(path)
    if name.lower().endswith(NOT_PROCFILES):
        return False
    return name == "Procfile" or name.startswith("Procfile.") or name.lower().endswith(".procfile")


def read_declarations(
    spec: str, base_dir: str, problems: list[Problem]
) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """The Procfile ``spec`` (relative to ``base_dir``) as name -> declaration, and the ``.env``
    variables every daemon gets; problems are appended to ``problems``, each naming the line."""
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(spec)))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        problems.append(Problem(f"cannot read the Procfile {path}: {exc.strerror}"))
        return {}, {}
    except UnicodeDecodeError:
        problems.append(Problem(f"the Procfile {path} is not valid UTF-8"))
        return {}, {}
    root = os.path.dirname(path)
    env = _dot_env(root, problems)
    port = _base_port(env, problems)
    decls: dict[str, dict[str, object]] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        entry = _entry(path, number, line.rstrip("\r"), problems)
        if entry is None:
            continue
        name, argv = entry
        if name in first_line:
            message = f"{path} line {number}: {name!r} is already declared on line {first_line[name]}"
            problems.append(Problem(message, daemon=name, hint="give each line its own name"))
            continue
        first_line[name] = number
        decls[name] = {"command": argv, "cwd": root, "env": {"PORT": str(port + PORT_STEP * len(decls))}}
    if not decls and not problems:
        problems.append(
            Problem(f"the Procfile {path} declares nothing", hint="write lines such as 'web: CMD'")
        )
    return decls, env


def _entry(path: str, number: int, line: str, problems: list[Problem]) -> tuple[str, list[str]] | None:
    """One line's name and argv; None for a blank line, a comment or a bad line (then a problem)."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    match = LINE.match(line)
    if match is None:
        hint = "write 'name: command', the name made of letters, digits, '_' and '-'"
        problems.append(Problem(f"{path} line {number} is not 'name: command'", hint=hint))
        return None
    name, command = match[1], match[2].strip()
    refused, _ = shell_syntax(command)
    where = f"{path} line {number}"
    if "unterminated quote" in refused:
        problems.append(Problem(f"{where}: the command has an unterminated quote", daemon=name))
        return None
    if "trailing &" in refused:
        hint = "drop the '&': the supervisor already runs it in the background"
        problems.append(Problem(f"{where}: the command ends in '&'", daemon=name, hint=hint))
        return None
    if refused:  # several commands: the shell is the daemon, as under honcho
        return name, ["/bin/sh", "-c", command]
    try:
        fields, _ = command_fields(command)
    except LineError as exc:
        problems.append(Problem(f"{where}: {exc.message}", daemon=name, hint=exc.hint))
        return None
    return name, list(fields["command"])  # type: ignore[call-overload]


def _dot_env(root: str, problems: list[Problem]) -> dict[str, str]:
    """The ``.env`` beside the Procfile, as honcho and foreman read it; none is fine."""
    path = os.path.join(root, ".env")
    if not os.path.exists(path):
        return {}
    values, errors = read_env_files([path])
    problems += [Problem(e.message, key="env_file", hint=e.hint) for e in errors]
    return values


def _base_port(env: Mapping[str, str], problems: list[Problem]) -> int:
    text = env.get("PORT", os.environ.get("PORT", str(DEFAULT_PORT)))
    if text.strip().isdigit() and 0 < int(text) < 65536:
        return int(text)
    problems.append(Problem("PORT (from .env or the environment) is not a port number", key="PORT"))
    return DEFAULT_PORT
