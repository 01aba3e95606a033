"""What the supervisor holds for one daemon while it runs it: OS handles, its timer, a stop in
progress, touch-file state. One object per daemon record (``Daemon.runtime``), so nothing about a
daemon lives in name-keyed tables on the supervisor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attachdaemon_core.engine.loop import Timer


class Stop:
    """A stop in progress: escalate at ``kill_at``; call ``then`` when the daemon is gone.

    (Plain classes here and in ``engine/``, not dataclasses: each dataclass costs the supervisor's
    boot a fraction of a millisecond.)"""

    __slots__ = ("kill_at", "killed", "launch", "pid", "scans_before", "sid", "then")

    def __init__(
        self,
        kill_at: float,
        then: list[Callable[[], None]] | None = None,
        *,
        pid: int | None = None,
        launch: bool = False,  # a smart daemon not (yet) adopted: end whatever its launch produced
    ) -> None:
        self.kill_at = kill_at
        self.then = then if then is not None else []
        self.killed = False
        self.sid: int | None = None
        self.scans_before = 0  # Stopper's /proc pass count when the stop began
        self.pid = pid
        self.launch = launch


class DaemonRuntime:
    """One daemon's live state in the supervisor (the record of what it is: ``Daemon``)."""

    __slots__ = ("pid_lock", "pidfd", "stop", "timer", "touch_mtimes")

    def __init__(self) -> None:
        self.pidfd: int | None = None  # smart: pidfd of the watched pid
        self.stop: Stop | None = None
        self.timer: Timer | None = None  # its one pending timer (backoff, pidfile poll, stop poll)
        self.pid_lock: int | None = None  # smart: fd holding the per-user lock on its pidfile path
        self.touch_mtimes: dict[str, float | None] = {}  # touch file -> last seen mtime

    def take_pidfd(self) -> int | None:
        fd, self.pidfd = self.pidfd, None
        return fd

    def take_stop(self) -> Stop | None:
        stop, self.stop = self.stop, None
        return stop

    def cancel_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
