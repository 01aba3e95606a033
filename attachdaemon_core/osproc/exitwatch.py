"""The portable layer's "tell me when pid N exits", and signals that reach only that process
(docs/process-model.md, "The portable layer").

A watch is a descriptor the caller registers with its selector, as it would a pidfd: it turns
readable once the process has exited (a zombie counts). Two ways to make one:

- **kqueue** (macOS, the BSDs: where ``select.kqueue`` exists): a kqueue of its own holding one
  ``KQ_FILTER_PROC``/``KQ_NOTE_EXIT`` event; the kernel wakes the selector, nothing polls. This
  path is not run by the tests here (Linux has no kqueue); it is kept small for that reason.
- **polling** (elsewhere, and on Linux when the portable layer is forced): a pipe whose write end
  gets a byte once a look finds the process gone or a zombie. A look is taken every
  ``POLL_INTERVAL`` (0.2 s) on the supervisor's own timers, armed only while some polling watch
  is open: an idle supervisor watching nothing is never woken by it. Without timers attached
  (the guard, which opens watches only to signal through them) nothing polls.

  Each look reads the process's state once, through the ``psutil.Process`` kept with the watch
  (gone, or a zombie: exited). Every ``IDENTITY_EVERY``-th look (every 1 s) also reads its start
  time afresh and compares it with the one recorded at ``open``: a pid freed and handed to
  another process between two looks is taken for an exit at most 1 s later. So an exit is heard
  within 0.2 s, unless the pid is reused before the next look (then within 1 s).

``signal`` reads the process's start time again right before ``os.kill``. A pid that is reused
between that read and the kill (microseconds) would still be hit: a pidfd closes that race on
Linux, and nothing here can.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable
from typing import Any, Protocol

import psutil

POLL_INTERVAL = 0.2  # seconds between looks while a polling watch is open (documented)
IDENTITY_EVERY = 5  # every 5th look (1 s) compares the start time too (documented)


class _Timer(Protocol):
    def cancel(self) -> None: ...


class TimersLike(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer: ...


def _live(pid: int) -> psutil.Process | None:
    """``pid`` as psutil sees it now (its start time read), None if gone or a zombie."""
    try:
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else p
    except psutil.Error:
        return None


def create_time(pid: int) -> float | None:
    """The start time psutil gives ``pid`` (its identity with the pid), None if gone or a zombie."""
    p = _live(pid)
    return None if p is None else float(p.create_time())


def _exited(process: psutil.Process) -> bool:
    """One read of ``process``'s state: True once it is gone or a zombie (it has exited)."""
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:  # (NoSuchProcess; AccessDenied: it can no longer be told apart)
        return True


def _start_time(pid: int) -> float | None:
    """One read of the start time of whatever process has ``pid`` now (None if none has)."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


class _Watch:
    __slots__ = ("created", "fired", "kq", "pid", "process", "write_fd")

    def __init__(self, pid: int, created: float, kq: Any, write_fd: int | None) -> None:
        self.pid = pid
        self.created = created
        self.kq = kq
        self.write_fd = write_fd
        self.fired = False
        # Kept, so that a look costs one read and builds no object (psutil.Process reads too).
        self.process: psutil.Process | None = None


class ExitWatches:
    """The open watches of this process, by the descriptor handed out."""

    def __init__(self, *, use_kqueue: bool | None = None) -> None:
        self.use_kqueue = hasattr(select, "kqueue") if use_kqueue is None else use_kqueue
        self.watches: dict[int, _Watch] = {}
        self.timers: TimersLike | None = None
        self.timer: _Timer | None = None
        self.polls = 0  # looks taken (the bench counts them as wake-ups)

    def attach(self, timers: TimersLike) -> None:
        """Poll on these timers (the supervisor's), only while a polling watch is open."""
        self.timers = timers
        self._arm()

    def open(self, pid: int) -> int | None:
        process = _live(pid)
        if process is None:
            return None
        created = float(process.create_time())
        if self.use_kqueue:
            return self._open_kqueue(pid, created)
        r, w = os.pipe()  # both ends close-on-exec (PEP 446)
        os.set_blocking(r, False)
        watch = self.watches[r] = _Watch(pid, created, None, w)
        watch.process = process
        self._arm()
        return r

    def _open_kqueue(self, pid: int, created: float) -> int | None:  # untested on Linux
        kqs: Any = select  # (its kqueue names exist only where the platform has kqueue)
        kq = kqs.kqueue()
        event = kqs.kevent(pid, kqs.KQ_FILTER_PROC, kqs.KQ_EV_ADD, kqs.KQ_NOTE_EXIT)
        try:
            kq.control([event], 0)
        except ProcessLookupError:  # exited (or a zombie) between the look and the registration
            kq.close()
            return None
        fd = int(kq.fileno())
        self.watches[fd] = _Watch(pid, created, kq, None)
        return fd

    def signal(self, fd: int, sig: int) -> bool:
        """Signal the watched process if it is still the one the watch was opened on."""
        watch = self.watches.get(fd)
        if watch is None or watch.fired or create_time(watch.pid) != watch.created:
            return False
        try:
            os.kill(watch.pid, sig)  # the remaining race: a pid reused since the line above
        except OSError:
            return False
        return True

    def close(self, fd: int) -> None:
        watch = self.watches.pop(fd, None)
        if watch is None:
            os.close(fd)
            return
        if watch.kq is not None:
            watch.kq.close()
            return
        os.close(fd)
        if watch.write_fd is not None:
            os.close(watch.write_fd)
        if self.timer is not None and not self._polling():
            self.timer.cancel()
            self.timer = None

    def _polling(self) -> bool:
        return any(w.kq is None and not w.fired for w in self.watches.values())

    def _arm(self) -> None:
        if self.timers is not None and self.timer is None and self._polling():
            self.timer = self.timers.call_later(POLL_INTERVAL, self.poll)

    def poll(self) -> None:
        """One look at every polling watch; the exited ones' pipes turn readable. Every
        ``IDENTITY_EVERY``-th look also compares start times (a pid reused since the last)."""
        self.timer = None
        self.polls += 1
        identity = self.polls % IDENTITY_EVERY == 0
        for watch in self.watches.values():
            if watch.process is None or watch.fired:
                continue
            if _exited(watch.process) or (identity and _start_time(watch.pid) != watch.created):
                watch.fired = True
                if watch.write_fd is not None:
                    with contextlib.suppress(OSError):
                        os.write(watch.write_fd, b"x")
        self._arm()


WATCHES = ExitWatches()
