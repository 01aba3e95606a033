"""gunicorn hooks: one import line in ``gunicorn.conf.py`` attaches the declared daemons to the master.

::

    from attachdaemon_core.hosts.gunicorn import *

    attach_daemons = {"memcached": {"command": "memcached -p 11211"}}
    attach_daemons_wait_ready = 10          # optional: hold the master until probes pass
    attach_daemons_runtime_dir = "/run/app"  # optional

The import installs ``on_starting`` (join as an owner, starting the supervisor if needed),
``on_reload`` (HUP: send the re-read declarations, return at once), ``on_exit`` (release; the
last owner waits for the final stop) and ``nworkers_changed`` (which gunicorn calls while it
loads its configuration, before anything starts: it refuses a configuration that replaced one of
the three hooks with a function that never calls ours). A config that defines its own hook calls
ours from it::

    import attachdaemon_core.gunicorn

    def on_exit(server):
        print("bye")
        attachdaemon_core.gunicorn.on_exit(server)

Everything here runs in the gunicorn master only, never in workers, and never imports the app:
``attachdaemon_django.gunicorn`` and ``attachdaemon_flask.gunicorn`` build the same hooks around a
short-lived child process that reads the declarations (:mod:`attachdaemon_core.hosts.reader`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO, cast

from attachdaemon_core.control import client
from attachdaemon_core.hosts import commands, runtime
from attachdaemon_core.hosts.reader import Declared, ReaderFailed
from attachdaemon_core.hosts.replaced_hooks import HOOK_MARK, replaced_hooks
from attachdaemon_core.osproc import sd_notify
from attachdaemon_core.spec import host_settings
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.host_settings import HostSettings
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, Problem

__all__ = ["nworkers_changed", "on_exit", "on_reload", "on_starting"]

LOG_PREFIX = "attachdaemon: "
# What a config namespace may set, besides the declarations themselves.
CONF_DECLARATIONS = "attach_daemons"
CONF_RUNTIME_DIR = "attach_daemons_runtime_dir"
CONF_WAIT_READY = "attach_daemons_wait_ready"
CONF_LEADER_BACKEND = "attach_daemons_leader_backend"

Reader = Callable[[Any], Declared]


class RefusedToStart(RuntimeError):
    """gunicorn prints a RuntimeError raised while it starts as ``Error: …`` and exits 1."""


def under_gunicorn() -> bool:
    """True in a gunicorn master or worker (workers are forked from the master)."""
    return "gunicorn.arbiter" in sys.modules


# ---------------------------------------------------------------------- reading gunicorn.conf.py
def config_namespace(server: Any) -> tuple[dict[str, Any], str]:
    """The executed config file's globals and its key (the file's absolute path, or ``python:MOD``)."""
    location = str(getattr(server.cfg, "config", "") or "")
    if location.startswith("python:"):
        module = sys.modules.get(location[len("python:") :])
        key = location
    else:
        # gunicorn executes the file as the module ``__config__`` (again on each HUP).
        module = sys.modules.get("__config__")
        key = os.path.abspath(getattr(module, "__file__", "") or location)
    if module is None:
        raise ConfigError(
            [Problem("no gunicorn configuration file was loaded", hint="put the hooks in gunicorn.conf.py")],
            location or "gunicorn",
        )
    return vars(module), key


def settings_from(ns: dict[str, Any], source: str, base_dir: str | None = None) -> HostSettings:
    """``attach_daemons_runtime_dir``/``_wait_ready``/``_leader_backend`` from a config, checked
    by the rule every host shares (:mod:`attachdaemon_core.spec.host_settings`); relative paths
    against ``base_dir``, by default gunicorn's directory (the cwd)."""
    base = os.getcwd() if base_dir is None else base_dir
    return host_settings.read(ns, spelling=host_settings.GUNICORN, base_dir=base, source=source)


def with_config_overrides(d: Declared, server: Any) -> Declared:
    """What a framework declared (read in a child), with the settings gunicorn.conf.py sets
    overriding it; hooks set without a config file leave it as it is."""
    try:
        ns, key = config_namespace(server)
    except ConfigError:
        return d
    over = settings_from(ns, key)
    return dataclasses.replace(
        d,
        runtime_dir=over.runtime_dir if ns.get(CONF_RUNTIME_DIR) is not None else d.runtime_dir,
        wait_ready=over.wait_ready if ns.get(CONF_WAIT_READY) is not None else d.wait_ready,
    )


def read_config_file(server: Any) -> Declared:
    """Plain gunicorn: ``attach_daemons`` in the config file; relative paths against the cwd."""
    ns, key = config_namespace(server)
    source = f"{key}: {CONF_DECLARATIONS}"
    if CONF_DECLARATIONS not in ns:
        raise ConfigError(
            [
                Problem(
                    f"{CONF_DECLARATIONS} is not set",
                    hint="declare the daemons there: a mapping of name -> declaration, or uWSGI lines",
                )
            ],
            key,
        )
    problems: list[Problem] = []
    settings = HostSettings()
    try:
        settings = settings_from(ns, key)
    except ConfigError as exc:
        problems += exc.problems
    try:
        specs = _parse(ns[CONF_DECLARATIONS], source, settings.leader_backend)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, source)
    return Declared(
        specs=specs,
        key=key,
        source=source,
        runtime_dir=settings.runtime_dir,
        wait_ready=settings.wait_ready,
    )


def _parse(declared: object, source: str, leader_backend: str) -> tuple[DaemonSpec, ...]:
    """``attach_daemons``: declarations, or a file's path; a ``.toml`` file (as ``attachdaemon
    migrate`` writes) gives its daemons, not its settings (docs/migrate.md)."""
    if isinstance(declared, (str, os.PathLike)) and os.fspath(declared).endswith(".toml"):
        from attachdaemon_core.spec.config_file import load_toml

        return load_toml(os.path.join(os.getcwd(), os.fspath(declared))).specs
    return parse_declarations(declared, base_dir=os.getcwd(), source=source, leader_backend=leader_backend)


# ---------------------------------------------------------------------- the hooks
class Hooks(NamedTuple):
    on_starting: Callable[[Any], None]
    on_reload: Callable[[Any], None]
    on_exit: Callable[[Any], None]
    nworkers_changed: Callable[[Any, Any, Any], None]


class _LogStream(io.TextIOBase):
    """A text stream whose lines go to gunicorn's error log as warnings."""

    def __init__(self, log: Any) -> None:
        self.log = log

    def write(self, s: str) -> int:
        for line in s.splitlines():
            if line.strip():
                self.log.warning("%s", line)
        return len(s)


def _with_worker_user(decl: dict[str, Any], server: Any) -> dict[str, Any]:
    """Under a root master whose ``user``/``group`` is set, daemons default to that user
    (docs/declarations.md, ``user``; ``user: "root"`` opts out), and that uid may read status
    (workers serve the page)."""
    uid, gid = getattr(server.cfg, "uid", 0), getattr(server.cfg, "gid", 0)
    if os.geteuid() == 0 and isinstance(uid, int) and uid != 0:
        decl = {**decl, "default_user": {"uid": uid, "gid": gid}, "read_only_uids": [uid]}
    return decl


class GunicornHooks:
    """The hooks of one config module, as methods of one object that holds what the master
    joined with; it survives HUP (gunicorn re-executes only the config, not this module)."""

    def __init__(self, module: str, read: Reader) -> None:
        self.module = module  # where the hooks are imported from, named in messages
        self.read = read
        self.owner = 0  # the pid of the master that joined, 0 before on_starting and after on_exit
        self.runtime_dir = ""
        self.stop_wait = 1.0

    def declared(self, server: Any) -> Declared:
        try:
            d = self.read(server)
        except ReaderFailed as exc:
            raise ConfigError([Problem(str(exc))], "the declarations") from None
        for p in d.warnings:
            server.log.warning("%s%s: %s", LOG_PREFIX, p.code, p)
        return d

    def on_starting(self, server: Any) -> None:
        if self.owner == os.getpid():
            return  # called twice (ours and a user's wrapper calling ours)
        problems = replaced_hooks(server.cfg, self.module)
        if problems:
            raise RefusedToStart(LOG_PREFIX + "\n".join(problems))
        try:
            d = self.declared(server)
            wait = _wait_ready(d)
        except ConfigError as exc:
            raise RefusedToStart(f"{LOG_PREFIX}refusing to start: {exc}") from None
        rd = runtime.runtime_dir_for(d.key, override=d.runtime_dir)
        decl = _with_worker_user(runtime.payload(d.specs, source=d.source, env=d.env), server)
        # Workers (forked later, maybe under another uid) find the supervisor for status pages.
        os.environ["ATTACH_DAEMONS_RUNTIME_DIR"] = rd
        try:
            result = runtime.join(rd, os.getpid(), decl)
        except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
            raise RefusedToStart(f"{LOG_PREFIX}refusing to start: {exc}") from None
        self.owner, self.runtime_dir, self.stop_wait = os.getpid(), rd, _stop_wait(d)
        how = "started" if result.get("first") else "joined"
        server.log.info(
            "%s%s supervisor pid %s for %d daemon(s) of %s (runtime dir %s)",
            LOG_PREFIX,
            how,
            result.get("pid"),
            len(d.specs),
            d.source,
            rd,
        )
        if wait > 0:
            # Under systemd Type=notify, gunicorn says READY=1 once on_starting returns: only after
            # this wait. Meanwhile systemd shows why, and its start timeout covers the wait.
            sd_notify.notify(
                f"STATUS=attachdaemon: waiting up to {wait:g}s for the daemons to be ready\n"
                f"EXTEND_TIMEOUT_USEC={int((wait + 10) * 1_000_000)}"
            )
            commands.wait_ready(rd, wait, cast(TextIO, _LogStream(server.log)), d.specs)

    def on_reload(self, server: Any) -> None:
        # Runs in gunicorn's main loop: an exception here would kill the master. Log, never raise.
        for problem in replaced_hooks(server.cfg, self.module):
            server.log.error("%s%s", LOG_PREFIX, problem)
        if self.owner != os.getpid():
            server.log.error("%sthe master never joined (on_starting did not run); no daemons", LOG_PREFIX)
            return
        try:
            d = self.declared(server)
        except ConfigError as exc:
            server.log.error("%sreload refused, the daemons keep their declarations: %s", LOG_PREFIX, exc)
            return
        new_rd = runtime.runtime_dir_for(d.key, override=d.runtime_dir)
        if new_rd != self.runtime_dir:
            server.log.warning(
                "%sthe runtime directory would change to %s; that takes a restart, keeping %s",
                LOG_PREFIX,
                new_rd,
                self.runtime_dir,
            )
        decl = _with_worker_user(runtime.payload(d.specs, source=d.source, env=d.env), server)
        self.stop_wait = max(self.stop_wait, _stop_wait(d))
        if self._send_reload(server, decl):
            server.log.info("%sreload sent (%d daemon(s))", LOG_PREFIX, len(d.specs))

    def _send_reload(self, server: Any, decl: dict[str, Any]) -> bool:
        """Send the reload; a supervisor that does not answer is joined again (its guard brings
        a dead one back within a second, or a new one starts). False, logged, when neither."""
        try:
            client.call(
                self.runtime_dir,
                "reload",
                owner=runtime.owner_identity(self.owner),
                declarations=decl,
                policies=True,
            )
        except client.NoSupervisor:
            try:
                runtime.join(self.runtime_dir, self.owner, decl, announce="reload")
            except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
                server.log.error("%sreload not sent: %s", LOG_PREFIX, exc)
                return False
        except client.ControlError as exc:
            server.log.error("%sreload not sent: %s", LOG_PREFIX, exc)
            return False
        return True

    def on_exit(self, server: Any) -> None:
        if self.owner != os.getpid():
            return
        self.owner = 0
        if not runtime.release(self.runtime_dir, os.getpid(), wait=self.stop_wait):
            server.log.warning(
                "%sthe supervisor did not finish stopping the daemons within %gs",
                LOG_PREFIX,
                self.stop_wait,
            )

    def nworkers_changed(self, server: Any, _new_value: Any, old_value: Any) -> None:
        # gunicorn calls this while it sets up its configuration: at start before on_starting
        # (a refusal here exits before anything starts), then on each HUP and TTIN/TTOU.
        problems = replaced_hooks(server.cfg, self.module)
        if problems and old_value is None and self.owner == 0:
            raise RefusedToStart(LOG_PREFIX + "\n".join(problems))
        for problem in problems:
            server.log.error("%s%s", LOG_PREFIX, problem)


def make_hooks(module: str, read: Reader) -> Hooks:
    """The three hooks (and the check) for a config that takes declarations from ``read(server)``.

    Plain functions with gunicorn's signatures (gunicorn checks each hook's arity), marked as
    ours so :func:`replaced_hooks` recognises them, and named after ``module``."""
    hooks = GunicornHooks(module, read)

    def on_starting(server: Any) -> None:
        hooks.on_starting(server)

    def on_reload(server: Any) -> None:
        hooks.on_reload(server)

    def on_exit(server: Any) -> None:
        hooks.on_exit(server)

    def nworkers_changed(server: Any, new_value: Any, old_value: Any) -> None:
        hooks.nworkers_changed(server, new_value, old_value)

    made = Hooks(on_starting, on_reload, on_exit, nworkers_changed)
    for name, fn in zip(Hooks._fields, made, strict=True):
        setattr(fn, HOOK_MARK, name)
        fn.__module__ = module
    return made


def _stop_wait(d: Declared) -> float:
    return max((s.stop_timeout for s in d.specs), default=0.0) + 1.0


def _wait_ready(d: Declared) -> float:
    """The declared wait, or ``ATTACH_DAEMONS_WAIT_READY`` from the environment (checked the way
    the CLI checks it: a bad value refuses the start, naming the variable)."""
    settings = host_settings.with_environment(HostSettings(wait_ready=d.wait_ready))
    return settings.wait_ready


on_starting, on_reload, on_exit, nworkers_changed = make_hooks(
    "attachdaemon_core.gunicorn", read_config_file
)  # its documented path
