"""The host settings that go with the declarations, validated by one rule for every host.

Every host reads the same settings, spelled its own way: ``ATTACH_DAEMONS_RUNTIME_DIR``,
``_WAIT_READY``, ``_LEADER_BACKEND`` and ``_AUTOSTART`` in Django settings and a Flask config;
``attach_daemons_runtime_dir``, ``_wait_ready`` and ``_leader_backend`` in gunicorn.conf.py (whose
hooks own the daemons: no autostart); ``runtime_dir``, ``wait_ready``, ``leader_backend`` and
``autostart`` at the top of a TOML file.

:func:`read` checks them all at once and raises one ConfigError naming each bad key, with the
fix; a value is never echoed in a way that shows a password (:mod:`attachdaemon_core.spec.redaction`).
A relative ``runtime_dir`` (``~`` expanded) is taken against the host's base directory, the one
its declarations' relative paths start from. The environment variable
``ATTACH_DAEMONS_WAIT_READY`` overrides ``wait_ready`` for every host (:func:`with_environment`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from attachdaemon_core.spec.converters import MAX_SECONDS
from attachdaemon_core.spec.declarations import leader_backend_problem
from attachdaemon_core.spec.model import ConfigError, Problem
from attachdaemon_core.spec.redaction import redact

__all__ = [
    "ENV_WAIT_READY",
    "GUNICORN",
    "SETTINGS",
    "TOML",
    "HostSettings",
    "Spelling",
    "read",
    "with_environment",
]

ENV_WAIT_READY = "ATTACH_DAEMONS_WAIT_READY"
FIELDS = ("runtime_dir", "wait_ready", "leader_backend", "autostart")


@dataclass(frozen=True)
class HostSettings:
    """The settings as validated; ``runtime_dir`` is absolute, or None (derived from the key)."""

    runtime_dir: str | None = None
    wait_ready: float = 0.0
    leader_backend: str = "file"
    autostart: bool = False


@dataclass(frozen=True)
class Spelling:
    """How one host spells the settings: the key of each field it reads, and its booleans."""

    keys: Mapping[str, str]
    true_false: str = "True or False"

    def key(self, field: str) -> str | None:
        return self.keys.get(field)


SETTINGS = Spelling({f: f"ATTACH_DAEMONS_{f.upper()}" for f in FIELDS})
GUNICORN = Spelling({f: f"attach_daemons_{f}" for f in FIELDS if f != "autostart"})
TOML = Spelling({f: f for f in FIELDS}, true_false="true or false")


def read(raw: Mapping[str, object], *, spelling: Spelling, base_dir: str, source: str) -> HostSettings:
    """Validate the settings found in ``raw`` (keyed as ``spelling`` spells them; a missing key or
    a None value takes the default). Raise ConfigError(source) listing every problem."""
    problems: list[Problem] = []
    values: dict[str, object] = {}
    for field in FIELDS:
        key = spelling.key(field)
        value = raw.get(key) if key is not None else None
        if key is None or value is None:
            continue
        try:
            values[field] = _CHECKS[field](value, base_dir, spelling)
        except _Bad as bad:
            problems.append(Problem(bad.message, key=key, hint=bad.hint))
    if problems:
        raise ConfigError(problems, source)
    return HostSettings(**values)  # type: ignore[arg-type]


def with_environment(settings: HostSettings, environ: Mapping[str, str] | None = None) -> HostSettings:
    """``settings`` with ``ATTACH_DAEMONS_WAIT_READY`` from the environment, when it is set;
    a bad value raises the ConfigError every host and the CLI report alike."""
    text = (os.environ if environ is None else environ).get(ENV_WAIT_READY, "")
    if not text.strip():
        return settings
    try:
        number = float(text)
    except ValueError:
        number = None
    try:
        wait = _wait_ready(text if number is None else number, "", SETTINGS)
    except _Bad as bad:
        raise ConfigError([Problem(bad.message, key=ENV_WAIT_READY)], "the environment") from None
    return dataclasses.replace(settings, wait_ready=wait)


class _Bad(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _show(value: object) -> str:
    """A value as a message shows it: repr, password values masked, at most 60 characters."""
    text = repr(redact(value)) if isinstance(value, str) else redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _string_hint(value: object, example: str) -> str | None:
    return f"use {example}, not a string" if isinstance(value, str) else None


def _runtime_dir(value: object, base_dir: str, _spelling: Spelling) -> str:
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str) and path.strip():
            return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))
    raise _Bad(f"must be a directory path, not {_show(value)}")


def _wait_ready(value: object, _base_dir: str, _spelling: Spelling) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise _Bad(
            f"must be a number of seconds >= 0, not {_show(value)}",
            _string_hint(value, "a number such as 10"),
        )
    return float(value)


def _leader_backend(value: object, _base_dir: str, _spelling: Spelling) -> str:
    problem = leader_backend_problem(value)
    if problem:
        raise _Bad(problem)
    return str(value)


def _autostart(value: object, _base_dir: str, spelling: Spelling) -> bool:
    if isinstance(value, bool):
        return value
    raise _Bad(f"must be {spelling.true_false}, not {_show(value)}")


_CHECKS = {
    "runtime_dir": _runtime_dir,
    "wait_ready": _wait_ready,
    "leader_backend": _leader_backend,
    "autostart": _autostart,
}
