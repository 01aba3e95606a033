"""What a daemon's process is started with: its user, umask, environment and output, as one
``SpawnRequest`` (docs/declarations.md, docs/process-model.md). Also the requests of the side
commands run as the daemon (readiness probes, leader hooks).

Nothing here spawns: the starter hands the request to the OS seam.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.logs import Capture, open_log_file, rotate_if_needed
from attachdaemon_core.osproc import pidfile
from attachdaemon_core.osproc.fds import pipe
from attachdaemon_core.osproc.spawn import Credentials, SpawnRequest, environment_for, resolve_credentials
from attachdaemon_core.spec.model import DaemonSpec

# The umask the server gave us: daemons without a declared ``umask`` still get it, while what the
# supervisor itself creates is private (umask 077, and explicit modes).
DAEMON_UMASK: int | None = None


def keep_server_umask() -> None:
    """Remember the server's umask for the daemons, and make the supervisor's own files private."""
    global DAEMON_UMASK
    DAEMON_UMASK = os.umask(0o077)


def umask_for(spec: DaemonSpec) -> int | None:
    return spec.umask if spec.umask is not None else DAEMON_UMASK


def credentials_for(spec: DaemonSpec, default_user: tuple[int, int] | None) -> Credentials | None:
    """Who the daemon runs as: its user/group, else the gunicorn user (docs/declarations.md), else us."""
    user, group = spec.user, spec.group
    if user is None and group is None and default_user is not None:
        user, group = map(str, default_user)
    return resolve_credentials(None if user == "root" else user, group)


def log_path(runtime_dir: str, spec: DaemonSpec) -> str:
    if spec.log == "runtime":
        return os.path.join(runtime_dir, "logs", f"{spec.name}.log")
    return spec.log


def side_request(
    argv: tuple[str, ...], spec: DaemonSpec, env: dict[str, str], creds: Credentials | None
) -> SpawnRequest:
    """A command the declaration gave besides the daemon's (a probe, a hook), run as the daemon."""
    return SpawnRequest(argv=argv, env=env, cwd=spec.cwd, credentials=creds, umask=umask_for(spec))


def daemon_request(
    d: Daemon,
    *,
    base_env: Mapping[str, str],
    creds: Credentials | None,
    token: int | None,
    capture: Capture,
    path: str,
    attached: bool,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[SpawnRequest, list[int]]:
    """The request that starts ``d``'s command, and the descriptors to close once it is spawned.
    ``path`` is its log file (unused for ``prefix`` and ``raw`` output); ``extra_env``: what the
    supervisor adds (a notify daemon's NOTIFY_SOCKET and WATCHDOG_USEC)."""
    spec = d.spec
    env = environment_for(base_env, spec, creds)
    env.update(extra_env or {})
    if token is not None:
        env["ATTACHDAEMON_LEADER_TOKEN"] = str(token)  # the fencing token (docs/events.md)
    if spec.pidfile is not None:  # tells this daemon's processes, whatever they run, from others
        env[pidfile.MARKER_VAR] = os.path.realpath(spec.pidfile)
    to_close: list[int] = []
    out: int | None = None
    if spec.log == "prefix":
        env.setdefault("PYTHONUNBUFFERED", "1")
        r, w = pipe()
        os.set_blocking(r, False)
        capture.open(d, r)
        out = w
        to_close.append(w)
    elif spec.log != "raw":
        rotate_if_needed(path, spec.log_max_bytes, spec.log_backups)
        owner = (creds.uid, creds.gid) if creds is not None else None
        out = open_log_file(path, private=spec.log == "runtime", owner=owner)
        to_close.append(out)
    req = SpawnRequest(
        argv=spec.command,
        env=env,
        cwd=spec.cwd,
        credentials=creds,
        umask=umask_for(spec),
        stdin_fd=0 if spec.stdin else None,
        stdout_fd=out,
        stderr_fd=out,
        parent_death_signal=signal.SIGKILL if attached else None,
    )
    return req, to_close
