"""A TOML file of declarations (``attachdaemon --config FILE.toml``), validated like settings.

``[daemons.NAME]`` tables and a top-level ``uwsgi = [...]`` list of uWSGI lines are merged; plain
top-level keys carry the settings (docs/declarations.md, "Host settings"): ``runtime_dir``,
``wait_ready``, ``leader_backend``, ``autostart``. Relative paths are taken against the file's
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

from attachdaemon_core.declarations import did_you_mean, leader_backend_problem, parse_declarations
from attachdaemon_core.spec import ConfigError, DaemonSpec, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["TOP_LEVEL_KEYS", "FileConfig", "load_toml", "read_runtime_dir"]

TOP_LEVEL_KEYS = ("daemons", "uwsgi", "runtime_dir", "wait_ready", "leader_backend", "autostart")


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
    problems: list[Problem] = []
    settings = _settings(data, base, problems)
    items = _items(data, problems)
    specs: tuple[DaemonSpec, ...] = ()
    try:
        specs = parse_declarations(
            items, base_dir=base, source=path, leader_backend=settings["leader_backend"]
        )
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, path)
    return FileConfig(path=path, specs=specs, **settings)


def read_runtime_dir(path: str) -> str | None:
    """Only the file's ``runtime_dir`` (absolute), or None; never raises.

    Commands such as ``status`` and ``stop`` must find the supervisor even when the declarations
    are invalid or the file is gone, so nothing else in the file is validated here.
    """
    path = os.path.abspath(path)
    try:
        value = _read(path).get("runtime_dir")
    except ConfigError:
        return None
    return _runtime_dir(value, os.path.dirname(path), []) if value is not None else None


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


def _settings(data: Mapping[str, Any], base: str, problems: list[Problem]) -> dict[str, Any]:
    """The top-level settings, checked; unknown top-level keys are problems too."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            spelled = key.lower().removeprefix("attach_daemons_")
            hint = did_you_mean(spelled, TOP_LEVEL_KEYS)
            problems.append(Problem("unknown top-level key", key=key, hint=hint))
    settings: dict[str, Any] = {"leader_backend": "file"}
    if "runtime_dir" in data:
        settings["runtime_dir"] = _runtime_dir(data["runtime_dir"], base, problems)
    if "wait_ready" in data:
        settings["wait_ready"] = _wait_ready(data["wait_ready"], problems)
    if "autostart" in data:
        settings["autostart"] = _autostart(data["autostart"], problems)
    if "leader_backend" in data:
        backend = data["leader_backend"]
        problem = leader_backend_problem(backend)
        if problem:
            problems.append(Problem(problem, key="leader_backend"))
        else:
            settings["leader_backend"] = backend
    return settings


def _runtime_dir(value: object, base: str, problems: list[Problem]) -> str | None:
    if isinstance(value, str) and value.strip():
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    problems.append(Problem(f"must be a directory path, not {value!r}", key="runtime_dir"))
    return None


def _wait_ready(value: object, problems: list[Problem]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10**9:
        message = f"must be a number of seconds >= 0, not {value!r}"
        problems.append(Problem(message, key="wait_ready"))
        return 0.0
    return float(value)


def _autostart(value: object, problems: list[Problem]) -> bool:
    if isinstance(value, bool):
        return value
    problems.append(Problem(f"must be true or false, not {value!r}", key="autostart"))
    return False


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
