"""What one launch of a smart daemon's command produced, and the per-user lock on its pidfile
path: the launcher, its session, its descendants, whatever carries the daemon's marker and started
since (all of it the daemon's, whatever its name). Functions of the daemon's record and /proc, read
through the OS seam they are given (``procs``: ``engine/os_seam.py``, or a test's fake)."""

from __future__ import annotations

import fcntl
import logging
import os

from attachdaemon_core.engine import logs
from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc import pidfile, proc
from attachdaemon_core.osproc.paths import RuntimeDirError, private_subdir, short_digest
from attachdaemon_core.spec.messages import error_text

log = logging.getLogger("attachdaemon")


def lock_pidfile(d: Daemon) -> bool:
    """Hold a per-user lock on the smart daemon's pidfile path, so two supervisors never
    manage one smart daemon. False (and the daemon fatal) when another supervisor has it."""
    if d.spec.pidfile is None or d.runtime.pid_lock is not None:
        return True
    real = os.path.realpath(d.spec.pidfile)
    digest = short_digest(real)
    try:
        lock_dir = private_subdir("pidlocks")
        fd = os.open(os.path.join(lock_dir, f"{digest}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except (OSError, RuntimeDirError) as exc:
        log.warning("daemon %r: cannot lock pidfile path (%s); going on", d.name, error_text(exc))
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        d.error = f"pidfile {real} is managed by another supervisor"
        log.error("daemon %r: %s; not starting it", d.name, d.error)
        if d.state != State.FATAL:
            d.set_state(State.FATAL, d.error)
        return False
    d.runtime.pid_lock = fd
    return True


def unlock_pidfile(d: Daemon) -> None:
    fd, d.runtime.pid_lock = d.runtime.pid_lock, None
    if fd is not None:
        os.close(fd)


def from_launch(d: Daemon, pid: int, *, procs: proc.Live) -> bool:
    """Whether our latest launch of ``d`` produced ``pid``: the launcher itself, a process of
    its session or below it, or one carrying the daemon's marker, started since the launch."""
    launch = d.launch
    if launch is None or d.spec.pidfile is None:
        return False
    st = procs.stat(pid)
    if st is None:
        return False
    if pid == launch.pid:
        return st.starttime == launch.starttime
    if st.starttime < launch.starttime:
        return False
    return (
        st.sid == launch.pid
        or procs.descends_from(pid, launch.pid)
        or procs.has_env(pid, pidfile.marker(d.spec.pidfile))
    )


def leftovers(d: Daemon, *, procs: proc.Live) -> list[int]:
    """The live processes our latest launch of ``d`` produced, other than its verified pid."""
    launch = d.launch
    if launch is None or d.spec.pidfile is None:
        return []
    mark = pidfile.marker(d.spec.pidfile)
    me = procs.getpid()
    return [
        st.pid
        for st in procs.started_since(launch.starttime)
        if st.pid not in (me, d.pid) and (launch.pid in (st.sid, st.pid) or procs.has_env(st.pid, mark))
    ]


def launch_output(d: Daemon, log_path: str, *, ended: bool = True) -> str:
    """What the launch printed (before it detached, say), for the error of a failed start."""
    launch = d.launch
    if launch is None:
        return ""
    how = f"; its command {d.launch_exit.describe()}" if ended and d.launch_exit is not None else ""
    if d.spec.log == "raw":
        return how
    if d.spec.log == "prefix":
        new = d.line_seq - launch.line_seq
        lines = list(d.lines)[-new:][-5:] if new > 0 else []
    else:
        lines = logs.lines_since(log_path, launch.log_offset)
    if not lines:
        return f"{how}; it printed nothing"
    return f"{how}; its last output: " + " | ".join(line.strip()[:200] for line in lines)
