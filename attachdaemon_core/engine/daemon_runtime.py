"""What the supervisor holds for one daemon while it runs it: OS handles, its timer, a stop in
progress, touch-file state. One object per daemon record (``Daemon.runtime``), so nothing about a
daemon lives in name-keyed tables on the supervisor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..loop import Timer


@dataclass
class Stop:
    """A stop in progress: escalate at ``kill_at``; call ``then`` when the daemon is gone."""

    kill_at: float
    then: list[Callable[[], None]] = field(default_factory=list)
    killed: bool = False
    sid: int | None = None
    pid: int | None = None
    launch: bool = False  # a smart daemon not (yet) adopted: end whatever its launch produced


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
