"""A TOML file of declarations (``attachdaemon --config FILE.toml``), validated like settings.

``[daemons.NAME]`` tables and a top-level ``uwsgi = [...]`` list of uWSGI lines are merged; a
top-level ``env_file`` gives every daemon its variables; plain top-level keys carry the settings
(docs/declarations.md, "Host settings"): ``runtime_dir``, ``wait_ready``, ``leader_backend``,
``autostart``. Relative paths are taken against the file's
directory. Every problem, including a TOML syntax error, comes back as one ConfigError naming the
file.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attachdaemon_core.spec import host_settings
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.envfile import env_file_paths, read_env_files
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["TOP_LEVEL_KEYS", "FileConfig", "load_toml", "read_runtime_dir"]

TOP_LEVEL_KEYS = ("daemons", "uwsgi", "env_file", *host_settings.TOML.keys.values())


@dataclass(frozen=True)
class FileConfig:
    """What a TOML file declares: its daemons and the settings that go with them."""

    path: str
    specs: tuple[DaemonSpec, ...]
    runtime_dir: str | None = None
    wait_ready: float = 0.0
    leader_backend: str = "file"
    autostart: bool = False


def load_toml(path: str) -> FileConfig:
    """Read and validate ``path``; raise ConfigError (source = the path) listing every problem."""
    path = os.path.abspath(path)
    data = _read(path)
    base = os.path.dirname(path)
    problems = _unknown_keys(data)
    settings = host_settings.HostSettings()
    try:
        settings = host_settings.read(data, spelling=host_settings.TOML, base_dir=base, source=path)
    except ConfigError as exc:
        problems += exc.problems
    items = _items(data, problems)
    env = _env_file(data, base, problems)
    specs: tuple[DaemonSpec, ...] = ()
    try:
        specs = parse_declarations(
            items, base_dir=base, source=path, leader_backend=settings.leader_backend, env_defaults=env
        )
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, path)
    return FileConfig(
        path=path,
        specs=specs,
        runtime_dir=settings.runtime_dir,
        wait_ready=settings.wait_ready,
        leader_backend=settings.leader_backend,
        autostart=settings.autostart,
    )


def read_runtime_dir(path: str) -> str | None:
    """Only the file's ``runtime_dir`` (absolute), or None; never raises.

    Commands such as ``status`` and ``stop`` must find the supervisor even when the declarations
    are invalid or the file is gone, so nothing else in the file is validated here.
    """
    path = os.path.abspath(path)
    try:
        data = _read(path)
        raw = {"runtime_dir": data.get("runtime_dir")}
        spelling, base = host_settings.TOML, os.path.dirname(path)
        return host_settings.read(raw, spelling=spelling, base_dir=base, source=path).runtime_dir
    except ConfigError:
        return None


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError([Problem(f"cannot read the file: {exc.strerror}")], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(_syntax_message(exc))], path) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem("the file is not valid UTF-8")], path) from None


def _syntax_message(exc: ValueError) -> str:
    """``TOML syntax error at line 3, column 7: Expected '=' …`` from tomllib's message."""
    text = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*\Z", text)
    if match is None:
        return f"TOML syntax error: {text}"
    return f"TOML syntax error at line {match[1]}, column {match[2]}: {text[: match.start()]}"


def _unknown_keys(data: Mapping[str, Any]) -> list[Problem]:
    """A problem for each top-level key that is neither a table we read nor a setting."""
    problems = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            spelled = key.lower().removeprefix("attach_daemons_")
            hint = did_you_mean(spelled, TOP_LEVEL_KEYS)
            problems.append(Problem("unknown top-level key", key=key, hint=hint))
    return problems


def _env_file(data: Mapping[str, Any], base: str, problems: list[Problem]) -> dict[str, str]:
    """A top-level ``env_file``: its variables go to every daemon, under each one's own
    ``env_file`` and ``env`` (docs/declarations.md, "Env files")."""
    if "env_file" not in data:
        return {}
    paths = env_file_paths(data["env_file"], base)
    if paths is None:
        problems.append(Problem("must be a path or a list of paths", key="env_file"))
        return {}
    values, errors = read_env_files(paths)
    problems += [Problem(e.message, key="env_file", hint=e.hint) for e in errors]
    return values


def _items(data: Mapping[str, Any], problems: list[Problem]) -> list[object]:
    """``[daemons.NAME]`` tables (named) followed by the ``uwsgi`` lines, as one mixed list."""
    items: list[object] = []
    daemons = data.get("daemons", {})
    if not isinstance(daemons, Mapping):
        problems.append(Problem("must be a table of [daemons.NAME] tables", key="daemons"))
        daemons = {}
    for name, table in daemons.items():
        if not isinstance(table, Mapping):
            hint = "put uWSGI lines in the top-level uwsgi = [...] list"
            problems.append(Problem("must be a [daemons.NAME] table", daemon=name, hint=hint))
        elif "name" in table and table["name"] != name:
            message = f"{table['name']!r} differs from the table name"
            problems.append(Problem(message, daemon=name, key="name"))
        else:
            items.append({**table, "name": name})
    lines = data.get("uwsgi", [])
    if isinstance(lines, list) and all(isinstance(line, str) for line in lines):
        items += lines
    else:
        problems.append(Problem("must be a list of uWSGI option lines", key="uwsgi"))
    return items
