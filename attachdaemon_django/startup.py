"""Whether this process starts the daemons: runserver and friends, or an opted-in server process.

Runs in ``AppConfig.ready()``, so in every process that calls ``django.setup()``. Dev servers
(``runserver``, subclasses of its command, ``runserver_plus``) start the supervisor once for
their whole life, owned by the reloader parent. Every other management command starts nothing.
With ``ATTACH_DAEMONS_AUTOSTART`` (the setting, or the environment variable of the same name,
which wins), any other process that loads the app (a uWSGI or daphne worker, a test runner…) owns
it too, except under gunicorn, whose hooks do that in the master (docs/declarations.md, "Host
settings").
"""

from __future__ import annotations

import os
import sys

from attachdaemon_core.control import client
from attachdaemon_core.hosts import commands, devserver, runtime
from attachdaemon_core.hosts.gunicorn import under_gunicorn
from attachdaemon_core.hosts.reader import in_reader_child
from attachdaemon_core.spec.model import ConfigError

from . import conf

DEV_SERVER_NAMES = frozenset({"runserver", "runserver_plus"})
MANAGE_PROGRAMS = frozenset({"manage.py", "django-admin", "django-admin.py", "__main__.py"})

_started = False


def running_command() -> tuple[str, type | None] | None:
    """The management command this process runs (name, class), or None when it runs none."""
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    from django.core.management import BaseCommand, get_commands, load_command_class

    app = get_commands().get(name) if name else None
    if app is None:
        # `manage.py` alone (help) runs no server either.
        return ("", None) if prog in MANAGE_PROGRAMS else None
    if isinstance(app, BaseCommand):
        return name, type(app)
    try:
        return name, type(load_command_class(app, name))
    except Exception:
        return name, None


def is_dev_server(name: str, cls: type | None) -> bool:
    """runserver, a subclass of its command (staticfiles', daphne's), or runserver_plus."""
    if cls is None or name == "runserver_plus":
        return name in DEV_SERVER_NAMES
    from django.core.management.commands.runserver import Command as RunserverCommand

    return issubclass(cls, RunserverCommand)


def should_start() -> bool:
    if in_reader_child() or under_gunicorn():
        return False
    command = running_command()
    if command is not None:
        return is_dev_server(*command)
    try:
        override = runtime.autostart_override()
    except ValueError as exc:
        sys.stderr.write(f"attachdaemon: not starting the daemons: {exc}\n")
        return False
    if override is not None:
        return override
    try:
        return conf.get().autostart
    except ConfigError:
        return False


def maybe_start() -> None:
    global _started
    if _started or not should_start():
        return
    _started = True
    start()


def start() -> None:
    """Join (reloader parent, server) or announce (reloader child); never raise into Django."""
    try:
        d = conf.declared()
    except ConfigError as exc:
        sys.stderr.write(f"attachdaemon: not starting the daemons: {exc}\n")
        return
    rd = runtime.runtime_dir_for(d.key, override=d.runtime_dir)
    decl = runtime.payload(d.specs, source=d.source, env=d.env)
    stop_wait = max((s.stop_timeout for s in d.specs), default=0.0) + 1.0
    try:
        devserver.attach(rd, decl, stop_wait=stop_wait)
    except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
        sys.stderr.write(f"attachdaemon: the daemons were not started: {exc}\n")
        return
    if d.wait_ready > 0 and not devserver.in_reloader_child():
        commands.wait_ready(rd, d.wait_ready, sys.stderr, d.specs)
