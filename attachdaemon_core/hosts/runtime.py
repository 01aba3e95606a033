"""The runtime directory, and starting or joining the supervisor from a host process.

Runs in host processes (gunicorn master, dev-server reloader parent, ``attachdaemon run``): it
never forks the host and never leaves a thread or a long-lived child of its own. The supervisor
is started as ``python -m attachdaemon_core guard``, which detaches at once (its first process
exits), so the host's child reaper never sees the guard or the supervisor.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from attachdaemon_core.control import client
from attachdaemon_core.osproc import layer
from attachdaemon_core.osproc.layer import LIVE
from attachdaemon_core.osproc.paths import RuntimeDirError, base_root, ensure_dir, private_subdir, user_root
from attachdaemon_core.spec.model import DaemonSpec

# Variables of the web server that must not reach a daemon (docs/process-model.md, "What a daemon inherits").
SERVER_VARIABLES = ("RUN_MAIN", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET")
SERVER_PREFIXES = ("WERKZEUG_", "FLASK_RUN_", "GUNICORN_", "ATTACHDAEMON_INTERNAL_")
START_DEADLINE = 10.0

__all__ = [
    "RuntimeDirError",
    "SupervisorUnavailable",
    "autostart_override",
    "base_root",
    "daemon_environment",
    "ensure_dir",
    "join",
    "owner_identity",
    "payload",
    "private_subdir",
    "release",
    "runtime_dir_for",
    "start_warnings",
    "user_root",
]


class SupervisorUnavailable(Exception):
    """The supervisor could not be started or reached."""


def runtime_dir_for(key: str, *, override: str | None = None) -> str:
    """The runtime directory for a declaration source ``key`` (docs/process-model.md)."""
    env = os.environ.get("ATTACH_DAEMONS_RUNTIME_DIR")
    if env:
        return os.path.abspath(env)
    if override:
        return os.path.abspath(override)
    import hashlib  # here: it maps OpenSSL (about 3 ms and 0.5 MB in a ``run`` owner), not needed above

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(key.rstrip("/")) or "app")[:24]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(user_root(), f"{slug}-{digest}")


def daemon_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The declaring process's environment minus the server's own variables."""
    env = dict(os.environ if environ is None else environ)
    for name in list(env):
        if name in SERVER_VARIABLES or name.startswith(SERVER_PREFIXES):
            del env[name]
    return env


def payload(
    specs: Sequence[DaemonSpec], *, source: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What an owner sends: the specs as JSON and the environment they were declared in."""
    return {
        "source": source,
        "specs": [s.to_wire() for s in specs],
        "env": daemon_environment(env),
    }


def owner_identity(pid: int) -> dict[str, int]:
    st = LIVE.stat(pid)
    ident = {"pid": pid, "starttime": st.starttime if st else 0}
    if pid == os.getpid() and os.getpid() == 1:
        ident["pid1"] = 1
    return ident


def start_warnings(specs: Sequence[DaemonSpec], owner_pid: int) -> list[str]:
    """What the start log should tell the operator about this environment (docs/process-model.md)."""
    notes = []
    smart = [s.name for s in specs if s.kind != "attached"]
    if owner_pid == 1:
        notes.append(
            "the server is PID 1 of its namespace: when it exits the kernel kills everything, so "
            "smart daemons are stopped too on a graceful stop; run `attachdaemon run -- gunicorn …` "
            "(or tini) as PID 1 instead"
        )
    if os.environ.get("INVOCATION_ID") and smart:
        notes.append(
            f"running under systemd with smart daemons ({', '.join(smart)}): they outlive a service "
            "stop only with KillMode=process, or in a unit of their own"
        )
    if sys.platform == "darwin":
        notes.append(
            "macOS is for development only: there is no parent-death signal or subreaper, so a "
            "killed supervisor may leave grandchildren behind"
        )
    if layer.PORTABLE:
        notes.append(
            'using the portable process layer (psutil; docs/process-model.md, "The portable layer"): '
            "no subreaper and no parent-death signal, so a daemon that double-forks away from its "
            "process group after the server is SIGKILLed can survive; exits of processes that are not "
            "the supervisor's children are noticed within 0.2 s where there is no kqueue (1 s if "
            "the pid is reused at once)"
        )
    return notes


def _exit_fd(pid: int) -> int | None:
    """A pidfd on the linux layer; the portable layer has none to offer a host (it would need the
    supervisor's timers), so its callers poll."""
    return None if layer.PORTABLE else LIVE.pidfd_open(pid)


def _spawn_guard(runtime_dir: str) -> None:
    """Start the guard (which starts the supervisor); returns once its first process has exited."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "attachdaemon_core", "guard", "--runtime-dir", runtime_dir],
        stdin=None,  # the server's fd 0, for daemons declared with `stdin: true` (docs/declarations.md)
        close_fds=True,
        start_new_session=True,
        env=env,
    )
    # Woken by its pidfd when the first process exits (Popen.wait(timeout) polls, sleeping up to
    # 50 ms between looks: about 16 ms of every start, bench/PROFILE-exec-form.md).
    fd = _exit_fd(proc.pid)
    if fd is not None:
        try:
            select.select([fd], [], [], START_DEADLINE)
        finally:
            os.close(fd)
    try:
        proc.wait(timeout=0 if fd is not None else START_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ChildProcessError:
        pass  # the host's reaper (gunicorn's waitpid(-1)) collected it first


def _wait_exit(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` for ``pid`` to exit, woken by its pidfd (without one: 20 ms)."""
    fd = _exit_fd(pid)
    if fd is None:
        time.sleep(0.02)
        return
    try:
        select.select([fd], [], [], max(0.0, timeout))
    finally:
        os.close(fd)


# Where the hosts start daemons (README "Platforms"): Linux, and the portable layer's kqueue
# platforms that psutil supports. Not DragonFly (psutil has no DragonFly port) nor Windows.
DAEMON_PLATFORMS = ("linux", "darwin", "freebsd", "openbsd", "netbsd")


def starts_daemons(platform: str) -> bool:
    """Whether the hosts start daemons on ``platform`` (a ``sys.platform`` value)."""
    return platform.startswith(DAEMON_PLATFORMS)


def join(
    runtime_dir: str,
    owner_pid: int,
    decl: Mapping[str, Any],
    *,
    announce: str = "add-owner",
    deadline: float = START_DEADLINE,
) -> Any:
    """Register ``owner_pid`` with the supervisor of ``runtime_dir``, starting it if needed."""
    if not starts_daemons(sys.platform):
        sys.stderr.write(f"attachdaemon: daemons are not started on {sys.platform}; nothing was started\n")
        return None
    if layer.ERROR is not None:
        raise SupervisorUnavailable(f"{layer.ERROR}; nothing was started")
    if announce == "add-owner":
        specs = [DaemonSpec.from_wire(s) for s in decl.get("specs", [])]
        for note in start_warnings(specs, owner_pid):
            sys.stderr.write(f"attachdaemon: {note}\n")
    ensure_dir(runtime_dir)
    ident = owner_identity(owner_pid)
    end = time.monotonic() + deadline
    spawned = False
    last = ""
    while time.monotonic() < end:
        try:
            return client.call(runtime_dir, announce, owner=ident, declarations=dict(decl))
        except client.NoSupervisor as exc:
            last = str(exc)
            if not spawned:
                _spawn_guard(runtime_dir)
                spawned = True
        except client.ControlError as exc:
            if "shutting down" not in str(exc):
                raise SupervisorUnavailable(str(exc)) from None
            last = str(exc)
            spawned = False  # it will exit; start a fresh one after it has gone
        # Once a guard is started, its supervisor listens within some 20 ms: look again often.
        time.sleep(0.002 if spawned else 0.01)
    raise SupervisorUnavailable(f"the supervisor in {runtime_dir} did not start in time: {last}")


def release(runtime_dir: str, owner_pid: int, *, wait: float = 0.0) -> bool:
    """Give up ``owner_pid``'s ownership; with ``wait``, wait for a final stop to finish."""
    try:
        result = client.call(runtime_dir, "remove-owner", owner=owner_identity(owner_pid))
    except (client.NoSupervisor, client.ControlError):
        return True
    if not (isinstance(result, dict) and result.get("final")):
        return True
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            answer = client.call(runtime_dir, "ping", timeout=1.0)
        except client.NoSupervisor:
            return True
        except client.ControlError:
            answer = None
        pid = answer.get("pid") if isinstance(answer, dict) else None
        # Woken by the supervisor's exit, then asked again (a respawned one answers too); at
        # most half a second per look, so a pid reused meanwhile costs no more than that.
        if isinstance(pid, int) and pid > 0:
            _wait_exit(pid, min(0.5, end - time.monotonic()))
        else:
            time.sleep(0.02)
    return False


AUTOSTART_VARIABLE = "ATTACH_DAEMONS_AUTOSTART"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def autostart_override(environ: Mapping[str, str] | None = None) -> bool | None:
    """The ``ATTACH_DAEMONS_AUTOSTART`` environment variable, which wins over the setting of the
    same name (docs/declarations.md, "Host settings"): True or False, None when it is unset or
    empty. Any other value is an error, raised as ValueError naming it."""
    raw = (os.environ if environ is None else environ).get(AUTOSTART_VARIABLE, "").strip()
    if not raw:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{AUTOSTART_VARIABLE}={raw!r} is not one of 1, 0, true, false, yes, no, on, off")
