"""The system calls the supervisor's engine makes, gathered on one object so that a test can
construct ``Supervisor(clock=fake, os=fake)`` and replay a history of events without processes.

:class:`RealOS` is the default: each member is the real function itself (no wrapper, so the hot
path pays one attribute lookup). A fake subclasses it and overrides what its test drives.
"""

from __future__ import annotations

import os
import signal

from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.spawn import SpawnRequest, spawn


def _reap_one() -> tuple[int, int] | None:
    """One exited child (pid, wait status), or None when none is waiting."""
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return None
    return (pid, status) if pid else None


def _proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    return proc.kill_session(sid, sig)


def _spawn(req: SpawnRequest) -> int:
    return spawn(req)


class RealOS:
    """Processes, signals, pidfds and /proc reads, as the supervisor uses them."""

    spawn = staticmethod(_spawn)
    reap_one = staticmethod(_reap_one)
    stat = staticmethod(proc.stat)
    proc_pids = staticmethod(_proc_pids)
    session_members = staticmethod(proc.session_members)
    live_sessions = staticmethod(proc.live_sessions)
    group_exists = staticmethod(proc.group_exists)
    signal_group = staticmethod(proc.signal_group)
    kill_session = staticmethod(_kill_session)
    pidfd_open = staticmethod(proc.pidfd_open)
    pidfd_signal = staticmethod(proc.pidfd_signal)
    close = staticmethod(os.close)
    getpid = staticmethod(os.getpid)
    boot_seconds = staticmethod(proc.boot_seconds)
    is_alive = staticmethod(proc.is_alive)
    owner_uid = staticmethod(proc.owner_uid)


REAL_OS = RealOS()
