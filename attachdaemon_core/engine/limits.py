"""Limits and planned restarts inside the supervisor's loop (docs/declarations.md, "Limits"):
``max_rss`` checked on one timer, and only while a running daemon declares it; ``max_lifetime``
and ``restart_at`` each a one-shot timer per run of a daemon that declares one. Every restart
they cause says which limit in the log and in status (``restart_cause``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, tzinfo

from attachdaemon_core.engine.daemon import Daemon, RestartCause
from attachdaemon_core.engine.decide.limits import (
    ProcInfo,
    Root,
    lifetime_left,
    next_planned,
    planned_due,
    rss_over,
    trees_rss,
)
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.layer import LIVE

log = logging.getLogger("attachdaemon")


def scan_processes() -> list[ProcInfo]:
    """Every live process's pid, parent, session and resident bytes (one /proc pass)."""
    return [ProcInfo(s.pid, s.ppid, s.sid, s.rss_pages * proc.PAGE_SIZE) for s in LIVE.started_since(0)]


def _own_session(d: Daemon, sid: int | None) -> int | None:
    """The daemon's session when it is its own (it leads it, or our launch of it made it), so a
    whole session counts only when nothing but the daemon lives in it; else its descendants only."""
    if sid is not None and (sid == d.pid or (d.launch is not None and sid == d.launch.pid)):
        return sid
    return None


class _Planned:
    __slots__ = ("limit", "pid", "target", "timer")

    def __init__(self, pid: int, limit: str, target: float, timer: Timer) -> None:
        self.pid = pid
        self.limit = limit  # "max_lifetime" or "restart_at"
        self.target = target  # restart_at: wall-clock time; max_lifetime: monotonic
        self.timer = timer


class Limits:
    """The limits of the daemons in ``daemons``; ``restart(d)`` restarts one."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        timers: Timers,
        restart: Callable[[Daemon], None],
        wall: Callable[[], float] = time.time,
        scan: Callable[[], Iterable[ProcInfo]] = scan_processes,
        tz: tzinfo | None = None,  # restart_at's zone: None is the system's local time
    ) -> None:
        self.tz = tz
        self.daemons = daemons
        self.timers = timers
        self.restart = restart
        self.wall = wall
        self.scan = scan
        self.rss_timer: Timer | None = None
        self.rss_every: float | None = None
        self.planned: dict[str, _Planned] = {}
        self.checks = 0  # max_rss checks run (the bench counts them)

    # ------------------------------------------------------------------ any limit
    def restart_because(self, d: Daemon, limit: str, detail: str) -> None:
        """Restart ``d`` for ``limit``, said in the log and in status."""
        d.restart_cause = RestartCause(limit, detail, self.wall())
        log.warning("daemon %r (pid %s) %s; restarting it", d.name, d.pid, detail)
        self.restart(d)

    def declarations_changed(self) -> None:
        self._update_rss_timer()
        for name in list(self.planned):
            d = self.daemons.get(name)
            if d is None or (d.spec.max_lifetime is None and not d.spec.restart_at):
                self.planned.pop(name).timer.cancel()
        for d in self.daemons.values():
            if d.state == State.RUNNING and d.pid is not None:
                self.running(d)

    def running(self, d: Daemon) -> None:
        """``d`` runs (started or adopted): arm its planned restart, if it declares one."""
        self._arm_planned(d)
        if d.spec.max_rss is not None and self.rss_timer is None:
            self._update_rss_timer()

    # ------------------------------------------------------------------ max_rss
    def _update_rss_timer(self) -> None:
        intervals = [d.spec.limit_check_interval for d in self.daemons.values() if d.spec.max_rss is not None]
        every = min(intervals) if intervals else None
        if every == self.rss_every and (self.rss_timer is not None or every is None):
            return
        if self.rss_timer is not None:
            self.rss_timer.cancel()
            self.rss_timer = None
        self.rss_every = every
        if every is not None and self._rss_watched():
            self.rss_timer = self.timers.call_later(every, self._check_rss)

    def _rss_watched(self) -> list[Daemon]:
        return [
            d
            for d in self.daemons.values()
            if d.spec.max_rss is not None and d.pid is not None and d.state == State.RUNNING
            if not d.stopping
        ]

    def _check_rss(self) -> None:
        """One check of every running daemon that declares max_rss, with one /proc pass; armed
        again while one runs (none running: no timer until one starts, see :meth:`running`)."""
        self.rss_timer = None
        watched = self._rss_watched()
        if not watched:
            return
        self.checks += 1
        table = list(self.scan())
        sessions = {p.pid: p.sid for p in table}
        roots = {d.name: Root(d.pid, _own_session(d, sessions.get(d.pid))) for d in watched if d.pid}
        totals = trees_rss(table, roots)
        for d in watched:
            total = totals.get(d.name, 0)
            d.tree_rss = total
            reason = rss_over(total, d.spec.max_rss)
            if reason is not None:
                self.restart_because(d, "max_rss", reason)
        if self.rss_every is not None:
            self.rss_timer = self.timers.call_later(self.rss_every, self._check_rss)

    # ------------------------------------------------------------------ planned restarts
    def _arm_planned(self, d: Daemon) -> None:
        old = self.planned.pop(d.name, None)
        if old is not None:
            old.timer.cancel()
        spec = d.spec
        if d.pid is None or (spec.max_lifetime is None and not spec.restart_at):
            return
        now = self.timers.clock()
        choices = []  # (monotonic due time, limit, target)
        if spec.max_lifetime is not None and d.started_mono is not None:
            due = d.started_mono + spec.max_lifetime
            choices.append((due, "max_lifetime", due))
        if spec.restart_at:
            wall = self.wall()
            target = next_planned(spec.restart_at, wall, self.tz)
            choices.append((now + target - wall, "restart_at", target))
        due, limit, target = min(choices)
        pid = d.pid
        timer = self.timers.call_at(due, lambda: self._planned_fired(d, pid))
        self.planned[d.name] = _Planned(pid, limit, target, timer)

    def _planned_fired(self, d: Daemon, pid: int) -> None:
        planned = self.planned.get(d.name)
        if planned is None or planned.pid != pid or d.pid != pid or self.daemons.get(d.name) is not d:
            return  # another run, or the daemon is gone: its own start armed its own timer
        if d.state != State.RUNNING or d.stopping:
            self.planned.pop(d.name)
            return
        if planned.limit == "restart_at" and not planned_due(planned.target, self.wall()):
            self._arm_planned(d)  # the wall clock was set back: not yet
            return
        if planned.limit == "max_lifetime" and self._lifetime_left(d) > 0.5:
            self._arm_planned(d)  # (fired early: a test's clock, or a spec changed by a reload)
            return
        self.planned.pop(d.name)
        if planned.limit == "max_lifetime":
            detail = f"max_lifetime: ran for {d.spec.max_lifetime:g}s, its planned restart"
        else:
            at = datetime.fromtimestamp(planned.target, self.tz).strftime("%H:%M")
            detail = f"restart_at: its planned restart at {at}"
        self.restart_because(d, planned.limit, detail)

    def _lifetime_left(self, d: Daemon) -> float:
        lifetime, started = d.spec.max_lifetime, d.started_mono
        if lifetime is None or started is None:
            return 0.0
        return lifetime_left(started, lifetime, self.timers.clock())

    def close(self) -> None:
        if self.rss_timer is not None:
            self.rss_timer.cancel()
        for planned in self.planned.values():
            planned.timer.cancel()
        self.planned.clear()
