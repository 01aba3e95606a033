"""The ATTACH_DAEMONS* settings, read lazily, cached, and cleared on ``setting_changed``.

Settings read (all optional):

- ``ATTACH_DAEMONS``: the declarations (docs/declarations.md); relative paths against ``BASE_DIR``,
  else the cwd.
- ``ATTACH_DAEMONS_RUNTIME_DIR``: where the supervisor lives (the environment variable of the
  same name wins); relative to ``BASE_DIR``, else the cwd; default: derived from the settings
  module and its file path.
- ``ATTACH_DAEMONS_AUTOSTART``: start from any server process that loads the app (not gunicorn).
- ``ATTACH_DAEMONS_WAIT_READY``: seconds an owner waits for daemons with a ``ready`` probe.
- ``ATTACH_DAEMONS_LEADER_BACKEND``: the lock backend of ``legion-*`` uWSGI lines.

All but ``ATTACH_DAEMONS`` are checked by :mod:`attachdaemon_core.spec.host_settings`, the rule the
Flask extension, the gunicorn hooks and the TOML file share.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from attachdaemon_core.hosts import runtime
from attachdaemon_core.hosts.reader import Declared
from attachdaemon_core.spec import host_settings
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem

SETTING_NAMES = frozenset(
    {
        "ATTACH_DAEMONS",
        "ATTACH_DAEMONS_RUNTIME_DIR",
        "ATTACH_DAEMONS_AUTOSTART",
        "ATTACH_DAEMONS_WAIT_READY",
        "ATTACH_DAEMONS_LEADER_BACKEND",
        "BASE_DIR",
    }
)
SOURCE = "settings.ATTACH_DAEMONS"


@dataclass(frozen=True)
class AttachSettings:
    """The settings as read, with the problems of the non-declaration ones."""

    declarations: object
    runtime_dir: str | None
    autostart: bool
    wait_ready: float
    leader_backend: str
    base_dir: str
    problems: tuple[Problem, ...]


@functools.cache
def get() -> AttachSettings:
    """The settings, checked by the rule every host shares (:mod:`attachdaemon_core.spec.host_settings`);
    a relative ``ATTACH_DAEMONS_RUNTIME_DIR`` is taken against ``BASE_DIR``, as the declarations are."""
    s = django_settings
    base = getattr(s, "BASE_DIR", None)
    base_dir = os.path.abspath(os.fspath(base)) if base is not None else os.getcwd()
    raw = {key: getattr(s, key, None) for key in host_settings.SETTINGS.keys.values()}
    problems: tuple[Problem, ...] = ()
    try:
        found = host_settings.read(raw, spelling=host_settings.SETTINGS, base_dir=base_dir, source=SOURCE)
    except ConfigError as exc:
        problems, found = tuple(exc.problems), host_settings.HostSettings()
    return AttachSettings(
        declarations=getattr(s, "ATTACH_DAEMONS", {}),
        runtime_dir=found.runtime_dir,
        autostart=found.autostart,
        wait_ready=found.wait_ready,
        leader_backend=found.leader_backend,
        base_dir=base_dir,
        problems=problems,
    )


@functools.cache
def specs() -> tuple[DaemonSpec, ...]:
    """The validated declarations; raises ConfigError listing every problem of every setting."""
    conf = get()
    problems = list(conf.problems)
    result: tuple[DaemonSpec, ...] = ()
    try:
        result = parse_declarations(
            conf.declarations, base_dir=conf.base_dir, source=SOURCE, leader_backend=conf.leader_backend
        )
    except ConfigError as exc:
        problems += exc.problems
    result = tuple(_resolve_django_backend(spec, problems) for spec in result)
    if problems:
        raise ConfigError(problems, SOURCE)
    return result


def _resolve_django_backend(spec: DaemonSpec, problems: list[Problem]) -> DaemonSpec:
    """``leader.backend = "django:ALIAS"``: a direct libpq DSN built from that DATABASES entry
    (its own connection, never Django's pooled one). Never shown in messages."""
    leader = spec.leader
    if leader is None or not leader.backend.startswith("django:"):
        return spec
    alias = leader.backend.split(":", 1)[1]
    db = getattr(django_settings, "DATABASES", {}).get(alias)
    if db is None:
        problems.append(Problem(f"no DATABASES entry {alias!r}", daemon=spec.name, key="leader"))
        return spec
    if "postgresql" not in str(db.get("ENGINE", "")):
        problems.append(
            Problem(
                f"DATABASES[{alias!r}] is not PostgreSQL; use postgresql://… or redis://…",
                daemon=spec.name,
                key="leader",
            )
        )
        return spec
    parts = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
    }
    for k, v in (db.get("OPTIONS") or {}).items():
        if isinstance(v, (str, int)) and k in ("sslmode", "sslrootcert", "sslcert", "sslkey", "service"):
            parts[k] = v
    dsn = " ".join(f"{k}={_libpq_quote(str(v))}" for k, v in parts.items() if v not in (None, ""))
    return dataclasses.replace(spec, leader=dataclasses.replace(leader, backend=dsn))


def _libpq_quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def settings_module() -> str | None:
    return django_settings.SETTINGS_MODULE if django_settings.configured else None


def key() -> str:
    """The runtime-dir key: the settings module and its file path as imported (not resolved)."""
    module = settings_module()
    path = getattr(sys.modules.get(module or ""), "__file__", None)
    return f"django:{module or '<configured>'}:{os.path.abspath(path) if path else os.getcwd()}"


def runtime_dir() -> str:
    return runtime.runtime_dir_for(key(), override=get().runtime_dir)


def environment() -> dict[str, str]:
    """The daemons' base environment: ours plus DJANGO_SETTINGS_MODULE (docs/process-model.md).

    Django sets ``TZ`` to ``TIME_ZONE`` in every process that loads settings; that is Django's
    doing, not the shell's, so it is not passed on (redis or PostgreSQL would log in the site's
    zone, America/Chicago by default, instead of the machine's).
    """
    env = dict(os.environ)
    if env.get("TZ") and env.get("TZ") == getattr(django_settings, "TIME_ZONE", None):
        del env["TZ"]
    module = settings_module()
    if module:
        env["DJANGO_SETTINGS_MODULE"] = module
    return env


def declared() -> Declared:
    """Everything a host needs to join; raises ConfigError."""
    from attachdaemon_core.spec.checks import check_specs

    found = specs()
    conf = get()
    return Declared(
        specs=found,
        key=key(),
        source=SOURCE,
        runtime_dir=conf.runtime_dir,
        wait_ready=conf.wait_ready,
        env=environment(),
        warnings=tuple(check_specs(found)),
    )


def clear(*, setting: str, **_kwargs: Any) -> None:
    """``setting_changed`` receiver: forget what was read, so ``override_settings`` works."""
    if setting in SETTING_NAMES:
        get.cache_clear()
        specs.cache_clear()
