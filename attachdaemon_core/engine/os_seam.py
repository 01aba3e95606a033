"""The system calls the supervisor's engine makes, gathered on one object so that a test can
construct ``Supervisor(clock=fake, os=fake)`` and replay a history of events without processes.

:class:`RealOS` is the default: each member is the real function itself (no wrapper, so the hot
path pays one attribute lookup). A fake subclasses it and overrides what its test drives.

What goes through it: every process the supervisor starts (daemons, smart launchers, probe
commands, leader hooks, lock holders), every signal it sends, every wait, and every read of
/proc, including the identity checks of a smart daemon's pidfile (``pidfile.verify`` and
``launches`` take it as ``procs``). What does not: files (pidfiles, logs, the state file, the
runtime directory and the per-user pidfile locks are real files; a test gives them a temporary
directory), the loop's own pipes and selector, and the guard, a separate process.
"""

from __future__ import annotations

import os

from attachdaemon_core.osproc import layer, proc
from attachdaemon_core.osproc.spawn import SpawnRequest, spawn


def _reap_one() -> tuple[int, int] | None:
    """One exited child (pid, wait status), or None when none is waiting."""
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return None
    return (pid, status) if pid else None


def _spawn(req: SpawnRequest) -> int:
    return spawn(req)


class RealOS(proc.Live):
    """Processes, signals, pidfds and /proc reads, as the supervisor uses them (the layer's
    members, :class:`~attachdaemon_core.osproc.proc.Live`, and these)."""

    spawn = staticmethod(_spawn)
    reap_one = staticmethod(_reap_one)


REAL_OS: RealOS
if layer.PORTABLE:  # psutil is imported only here, when the portable layer was chosen
    from attachdaemon_core.osproc.portable import Portable

    class PortableOS(Portable, RealOS):
        """The same seam over the portable layer: its members win over the linux ones."""

    REAL_OS = PortableOS()
else:
    REAL_OS = RealOS()
