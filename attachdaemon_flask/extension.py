"""The Flask extension: ``AttachDaemons(app)`` or ``ext = AttachDaemons(); ext.init_app(app)``.

Config keys read (defaults written back with ``app.config.setdefault``):

- ``ATTACH_DAEMONS`` (``{}``): the declarations (docs/declarations.md); relative paths against
  ``app.root_path``.
- ``ATTACH_DAEMONS_RUNTIME_DIR`` (``None``): where the supervisor lives (the environment variable
  of the same name wins); relative to ``app.root_path``; default: derived from the app's import
  name and root path.
- ``ATTACH_DAEMONS_AUTOSTART`` (``False``): start from any server process that loads the app
  (ignored under gunicorn, whose hooks own the daemons: ``attachdaemon_flask.gunicorn``); the
  environment variable of the same name (``0``/``1``) wins over it.
- ``ATTACH_DAEMONS_WAIT_READY`` (``0``): seconds an owner waits for daemons with a ``ready`` probe.
- ``ATTACH_DAEMONS_LEADER_BACKEND`` (``"file"``): the lock backend of ``legion-*`` uWSGI lines.

The settings are checked by :mod:`attachdaemon_core.spec.host_settings` (one rule for every host).

``flask run`` (with or without the reloader) and ``app.run()`` start the daemons once for their
whole life, owned by the reloader parent; other ``flask`` commands never do. ``init_app`` raises
:class:`~attachdaemon_core.spec.model.ConfigError` listing every problem of bad declarations. The state
lives in ``app.extensions["attachdaemon"]``: several apps, and app factories, are supported.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask

from attachdaemon_core.control import client
from attachdaemon_core.hosts import commands, devserver, runtime
from attachdaemon_core.hosts.gunicorn import under_gunicorn
from attachdaemon_core.hosts.reader import Declared, in_reader_child
from attachdaemon_core.spec import host_settings
from attachdaemon_core.spec.declarations import check_specs, parse_declarations
from attachdaemon_core.spec.model import ConfigError, Problem

EXTENSION = "attachdaemon"
SOURCE = 'app.config["ATTACH_DAEMONS"]'
DEFAULTS: dict[str, Any] = {
    "ATTACH_DAEMONS": {},
    "ATTACH_DAEMONS_RUNTIME_DIR": None,
    "ATTACH_DAEMONS_AUTOSTART": False,
    "ATTACH_DAEMONS_WAIT_READY": 0,
    "ATTACH_DAEMONS_LEADER_BACKEND": "file",
}


@dataclass
class AttachState:
    """One app's declarations and where its supervisor lives."""

    declared: Declared
    runtime_dir: str
    autostart: bool
    started: bool = False


class AttachDaemons:
    """Attach the daemons of ``app.config["ATTACH_DAEMONS"]`` to the app's dev server."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for name, value in DEFAULTS.items():
            app.config.setdefault(name, value)
        state = read_state(app)
        app.extensions[EXTENSION] = state
        from .cli import daemons

        if "daemons" not in app.cli.commands:
            app.cli.add_command(daemons)
        # With prometheus_client installed, our series join the app's own /metrics
        # (prometheus-flask-exporter…), docs/monitoring.md.
        from attachdaemon_core.hosts.metrics import register_default

        register_default(state.runtime_dir)
        _wrap_run(app)
        if _in_flask_run() or _may_autostart(state.autostart):
            start(app)


def app_key(app: Flask) -> str:
    """The runtime-dir key: import name and root path (``__main__`` named as it is imported)."""
    name = app.import_name
    if name == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            name = os.path.splitext(os.path.basename(main_file))[0]
    return f"flask:{name}:{app.root_path}"


def read_state(app: Flask) -> AttachState:
    """Validate the config keys and the declarations; raise ConfigError with every problem."""
    cfg = app.config
    problems: list[Problem] = []
    settings = host_settings.HostSettings()
    try:  # a relative ATTACH_DAEMONS_RUNTIME_DIR starts in app.root_path, as the declarations do
        settings = host_settings.read(
            cfg, spelling=host_settings.SETTINGS, base_dir=app.root_path, source=SOURCE
        )
    except ConfigError as exc:
        problems += exc.problems
    specs: tuple[Any, ...] = ()
    try:
        specs = parse_declarations(
            cfg.get("ATTACH_DAEMONS", {}),
            base_dir=app.root_path,
            source=SOURCE,
            leader_backend=settings.leader_backend,
        )
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, SOURCE)
    key = app_key(app)
    declared = Declared(
        specs=specs,
        key=key,
        source=SOURCE,
        runtime_dir=settings.runtime_dir,
        wait_ready=settings.wait_ready,
        warnings=tuple(check_specs(specs)),
    )
    return AttachState(
        declared=declared,
        runtime_dir=runtime.runtime_dir_for(key, override=declared.runtime_dir),
        autostart=settings.autostart,
    )


def state_of(app: Flask) -> AttachState:
    try:
        return app.extensions[EXTENSION]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError("AttachDaemons was not initialised for this app (call init_app)") from None


def start(app: Flask) -> None:
    """Join (reloader parent, server) or announce (reloader child), once per app and process."""
    state = state_of(app)
    if state.started:
        return
    state.started = True
    d = state.declared
    for p in d.warnings:
        sys.stderr.write(f"attachdaemon: {p.code}: {p}\n")
    decl = runtime.payload(d.specs, source=d.source, env=d.env)
    stop_wait = max((s.stop_timeout for s in d.specs), default=0.0) + 1.0
    try:
        devserver.attach(state.runtime_dir, decl, stop_wait=stop_wait)
    except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
        sys.stderr.write(f"attachdaemon: the daemons were not started: {exc}\n")
        return
    if d.wait_ready > 0 and not devserver.in_reloader_child():
        commands.wait_ready(state.runtime_dir, d.wait_ready, sys.stderr, d.specs)


def _in_flask_run() -> bool:
    """True while ``flask run`` loads the app (FLASK_RUN_FROM_CLI is set for every flask command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name != "run":
        return False
    from flask.cli import FlaskGroup

    return isinstance(ctx.find_root().command, FlaskGroup)


def _may_autostart(setting: bool) -> bool:
    """``ATTACH_DAEMONS_AUTOSTART``: the environment variable of that name wins over the config
    key (docs/declarations.md, "Host settings")."""
    try:
        override = runtime.autostart_override()
    except ValueError as exc:
        sys.stderr.write(f"attachdaemon: not starting the daemons: {exc}\n")
        return False
    if not (setting if override is None else override):
        return False
    if in_reader_child() or under_gunicorn():
        return False
    # Any other flask command (routes, shell, daemons…) loads the app without serving it.
    return click.get_current_context(silent=True) is None


def _wrap_run(app: Flask) -> None:
    """``app.run()`` from ``__main__`` starts the daemons first (it is a no-op under ``flask run``)."""
    original = app.run
    if getattr(original, "_attachdaemon", False):
        return

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> None:
        if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
            start(app)
        original(*args, **kwargs)

    run._attachdaemon = True  # type: ignore[attr-defined]
    app.run = run  # type: ignore[method-assign]
