"""gunicorn hooks: one import line in ``gunicorn.conf.py`` attaches the declared daemons to the master.

::

    from attachdaemon_core.gunicorn import *

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
short-lived child process that reads the declarations (:mod:`attachdaemon_core.reader`).
"""

from __future__ import annotations

import io
import math
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO, cast

from . import commands, runtime
from .control import client
from .declarations import parse_declarations
from .reader import Declared, ReaderFailed
from .spec import ConfigError, Problem

__all__ = ["nworkers_changed", "on_exit", "on_reload", "on_starting"]

HOOK_NAMES = ("on_starting", "on_reload", "on_exit")
HOOK_MARK = "_attachdaemon_hook"
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


def settings_from(ns: dict[str, Any], source: str) -> dict[str, Any]:
    """``attach_daemons_runtime_dir``/``_wait_ready``/``_leader_backend`` from a config, checked."""
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    rd = ns.get(CONF_RUNTIME_DIR)
    if rd is not None:
        if isinstance(rd, str) and rd.strip():
            out["runtime_dir"] = rd
        else:
            problems.append(Problem(f"must be a directory path, not {rd!r}", key=CONF_RUNTIME_DIR))
    wr = ns.get(CONF_WAIT_READY)
    if wr is not None:
        if isinstance(wr, bool) or not isinstance(wr, (int, float)) or not 0 <= wr < math.inf:
            problems.append(Problem(f"must be a number of seconds >= 0, not {wr!r}", key=CONF_WAIT_READY))
        else:
            out["wait_ready"] = float(wr)
    lb = ns.get(CONF_LEADER_BACKEND)
    if lb is not None:
        out["leader_backend"] = lb
    if problems:
        raise ConfigError(problems, source)
    return out


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
    try:
        settings = settings_from(ns, key)
    except ConfigError as exc:
        problems += exc.problems
        settings = {}
    try:
        specs = parse_declarations(
            ns[CONF_DECLARATIONS],
            base_dir=os.getcwd(),
            source=source,
            leader_backend=settings.get("leader_backend", "file"),
        )
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, source)
    return Declared(
        specs=specs,
        key=key,
        source=source,
        runtime_dir=settings.get("runtime_dir"),
        wait_ready=settings.get("wait_ready", 0.0),
    )


# ---------------------------------------------------------------------- replaced hooks
def replaced_hooks(cfg: Any, module: str) -> list[str]:
    """The hooks in ``cfg`` that are neither ours nor a function that refers to ours, explained."""
    problems = []
    for name in HOOK_NAMES:
        fn = getattr(cfg, name, None)
        if fn is None or _refers_to_hook(fn, name, depth=3):
            continue
        where = _where(fn)
        problems.append(
            f"the {name} hook in the gunicorn configuration is {where}, which never calls "
            f"attachdaemon's {name}; call it from yours: `import {module}` at the top, then "
            f"`{module}.{name}(server)` in your {name}"
        )
    return problems


def _where(fn: Any) -> str:
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    name = getattr(target, "__qualname__", repr(target))
    if code is None:
        return f"{name}()"
    return f"{name}() at {code.co_filename}:{code.co_firstlineno}"


def _refers_to_hook(fn: Any, name: str, depth: int) -> bool:
    """Does ``fn`` (or a function of the config it calls) refer to our hook ``name``?

    A static look at the names its code uses: our hook itself under any alias, or our module with
    the hook's name read from it. A hook that forgot to call ours refers to neither.
    """
    seen = fn
    while seen is not None:
        if getattr(seen, HOOK_MARK, None) == name:
            return True
        seen = getattr(seen, "__wrapped__", None)
    target = getattr(fn, "__func__", fn)
    if not isinstance(target, types.FunctionType):
        target = getattr(getattr(target, "__call__", None), "__func__", None)  # noqa: B004
        if not isinstance(target, types.FunctionType):
            return False
    code_names = set(_names(target.__code__))
    values = [target.__globals__.get(n) for n in code_names]
    values += [c.cell_contents for c in target.__closure__ or () if _filled(c)]
    for value in values:
        if getattr(value, HOOK_MARK, None) == name:
            return True
        if (
            isinstance(value, types.ModuleType)
            and value.__name__.startswith("attachdaemon_")
            and name in code_names
        ):
            return True
        if (
            depth > 0
            and isinstance(value, types.FunctionType)
            and value is not target
            and value.__globals__ is target.__globals__
            and _refers_to_hook(value, name, depth - 1)
        ):
            return True
    return False


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


# ---------------------------------------------------------------------- the hooks
class Hooks(NamedTuple):
    on_starting: Callable[[Any], None]
    on_reload: Callable[[Any], None]
    on_exit: Callable[[Any], None]
    nworkers_changed: Callable[[Any, Any, Any], None]


@dataclass
class _Master:
    """What this master joined with; it survives HUP (gunicorn re-executes only the config)."""

    owner: int = 0
    runtime_dir: str = ""
    stop_wait: float = 1.0


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


def make_hooks(module: str, read: Reader) -> Hooks:
    """The three hooks (and the check) for a config that takes declarations from ``read(server)``."""
    master = _Master()

    def declared(server: Any) -> Declared:
        try:
            d = read(server)
        except ReaderFailed as exc:
            raise ConfigError([Problem(str(exc))], "the declarations") from None
        for p in d.warnings:
            server.log.warning("%s%s: %s", LOG_PREFIX, p.code, p)
        return d

    def on_starting(server: Any) -> None:
        if master.owner == os.getpid():
            return  # called twice (ours and a user's wrapper calling ours)
        problems = replaced_hooks(server.cfg, module)
        if problems:
            raise RefusedToStart(LOG_PREFIX + "\n".join(problems))
        try:
            d = declared(server)
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
        master.owner = os.getpid()
        master.runtime_dir = rd
        master.stop_wait = _stop_wait(d)
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
        wait = _wait_ready(d)
        if wait > 0:
            commands.wait_ready(rd, wait, cast(TextIO, _LogStream(server.log)), d.specs)

    def on_reload(server: Any) -> None:
        # Runs in gunicorn's main loop: an exception here would kill the master. Log, never raise.
        for problem in replaced_hooks(server.cfg, module):
            server.log.error("%s%s", LOG_PREFIX, problem)
        if master.owner != os.getpid():
            server.log.error("%sthe master never joined (on_starting did not run); no daemons", LOG_PREFIX)
            return
        try:
            d = declared(server)
        except ConfigError as exc:
            server.log.error("%sreload refused, the daemons keep their declarations: %s", LOG_PREFIX, exc)
            return
        new_rd = runtime.runtime_dir_for(d.key, override=d.runtime_dir)
        if new_rd != master.runtime_dir:
            server.log.warning(
                "%sthe runtime directory would change to %s; that takes a restart, keeping %s",
                LOG_PREFIX,
                new_rd,
                master.runtime_dir,
            )
        decl = _with_worker_user(runtime.payload(d.specs, source=d.source, env=d.env), server)
        master.stop_wait = max(master.stop_wait, _stop_wait(d))
        try:
            client.call(
                master.runtime_dir,
                "reload",
                owner=runtime.owner_identity(master.owner),
                declarations=decl,
                policies=True,
            )
        except client.NoSupervisor:
            # The guard brings a dead supervisor back within a second; join it (or a new one).
            try:
                runtime.join(master.runtime_dir, master.owner, decl, announce="reload")
            except (runtime.SupervisorUnavailable, runtime.RuntimeDirError, client.ControlError) as exc:
                server.log.error("%sreload not sent: %s", LOG_PREFIX, exc)
                return
        except client.ControlError as exc:
            server.log.error("%sreload not sent: %s", LOG_PREFIX, exc)
            return
        server.log.info("%sreload sent (%d daemon(s))", LOG_PREFIX, len(d.specs))

    def on_exit(server: Any) -> None:
        if master.owner != os.getpid():
            return
        master.owner = 0
        if not runtime.release(master.runtime_dir, os.getpid(), wait=master.stop_wait):
            server.log.warning(
                "%sthe supervisor did not finish stopping the daemons within %gs",
                LOG_PREFIX,
                master.stop_wait,
            )

    def nworkers_changed(server: Any, new_value: Any, old_value: Any) -> None:
        # gunicorn calls this while it sets up its configuration: at start before on_starting
        # (a refusal here exits before anything starts), then on each HUP and TTIN/TTOU.
        problems = replaced_hooks(server.cfg, module)
        if problems and old_value is None and master.owner == 0:
            raise RefusedToStart(LOG_PREFIX + "\n".join(problems))
        for problem in problems:
            server.log.error("%s%s", LOG_PREFIX, problem)

    for fn, name in (
        (on_starting, "on_starting"),
        (on_reload, "on_reload"),
        (on_exit, "on_exit"),
        (nworkers_changed, "nworkers_changed"),
    ):
        setattr(fn, HOOK_MARK, name)
        fn.__module__ = module
    return Hooks(on_starting, on_reload, on_exit, nworkers_changed)


def _stop_wait(d: Declared) -> float:
    return max((s.stop_timeout for s in d.specs), default=0.0) + 1.0


def _wait_ready(d: Declared) -> float:
    env = os.environ.get("ATTACH_DAEMONS_WAIT_READY")
    if env:
        try:
            return max(0.0, float(env))
        except ValueError:
            return d.wait_ready
    return d.wait_ready


on_starting, on_reload, on_exit, nworkers_changed = make_hooks(__name__, read_config_file)
