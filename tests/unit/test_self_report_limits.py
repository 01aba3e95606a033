"""Readiness a daemon reports itself and limits (issue 13, §2 and §4): the pure decisions
(``engine/decide/notify.py``, ``engine/decide/limits.py``) and the ``Limits`` timers, with a fake
clock, a fake wall clock and a scripted process table (the OS seam)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.decide import notify
from attachdaemon_core.engine.decide.limits import (
    MIB,
    ProcInfo,
    Root,
    lifetime_left,
    next_planned,
    planned_due,
    rss_over,
    trees_rss,
)
from attachdaemon_core.engine.limits import Limits
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec

pytestmark = pytest.mark.unit
PARIS = ZoneInfo("Europe/Paris")


# --------------------------------------------------------------------------- sd_notify messages
def test_notify_message_parses_the_assignments_acted_on() -> None:
    msg = notify.parse(b"READY=1\nSTATUS=Processing requests\nMAINPID=4242\nWATCHDOG=1\n")
    assert msg.ready and msg.status == "Processing requests" and msg.watchdog == "ping"
    assert not msg.reloading and not msg.stopping and msg.watchdog_usec is None


def test_notify_message_ignores_malformed_and_unknown_lines() -> None:
    msg = notify.parse(b"garbage\nREADY=0\nREADY=yes\nWATCHDOG=2\nWATCHDOG_USEC=-5\nX=1\n\xff\xfe")
    assert not msg


def test_notify_status_is_cut_and_made_printable() -> None:
    msg = notify.parse(b"STATUS=" + b"a\tb\x1bc" + b"x" * 500)
    assert msg.status is not None and msg.status.startswith("a b c") and len(msg.status) == notify.MAX_STATUS


def test_notify_watchdog_trigger_and_new_timeout() -> None:
    assert notify.parse(b"WATCHDOG=trigger").watchdog == "trigger"
    assert notify.parse(b"WATCHDOG_USEC=2500000").watchdog_usec == 2_500_000


@pytest.mark.parametrize(
    ("before", "data", "expected"),
    [
        ((False, None), b"READY=1", (True, None)),
        ((True, None), b"RELOADING=1", (False, "reloading")),
        ((False, "reloading"), b"READY=1", (True, None)),
        ((True, None), b"RELOADING=1\nREADY=1", (True, None)),  # a reload already over
        ((True, None), b"STOPPING=1", (False, "stopping")),
        ((False, "stopping"), b"READY=1", (False, "stopping")),  # stopping lasts until it exits
        ((True, None), b"STATUS=hi", (True, None)),
    ],
)
def test_notify_phase_after_a_message(
    before: tuple[bool, str | None], data: bytes, expected: tuple[bool, str | None]
) -> None:
    assert tuple(notify.after(notify.Phase(*before), notify.parse(data))) == expected


def test_watchdog_left_counts_from_the_last_ping() -> None:
    assert notify.watchdog_left(last_ping=10.0, timeout=3.0, now=12.0) == 1.0
    assert notify.watchdog_left(last_ping=10.0, timeout=3.0, now=13.5) < 0


# --------------------------------------------------------------------------- process trees
def test_tree_rss_counts_descendants_and_the_session_once() -> None:
    procs = [
        ProcInfo(100, 1, 100, 10 * MIB),  # the daemon, leading session 100
        ProcInfo(101, 100, 100, 20 * MIB),  # its child
        ProcInfo(102, 101, 100, 5 * MIB),  # a grandchild
        ProcInfo(103, 1, 100, 7 * MIB),  # double-forked: reparented, still in the session
        ProcInfo(200, 1, 200, 99 * MIB),  # another daemon
        ProcInfo(300, 1, 300, 50 * MIB),  # unrelated
    ]
    totals = trees_rss(procs, {"a": Root(100, 100), "b": Root(200, 200)})
    assert totals == {"a": 42 * MIB, "b": 99 * MIB}


def test_tree_rss_without_a_session_follows_descendants_only() -> None:
    procs = [ProcInfo(10, 1, 5, MIB), ProcInfo(11, 10, 5, MIB), ProcInfo(12, 1, 5, 100 * MIB)]
    assert trees_rss(procs, {"smart": Root(10, None)}) == {"smart": 2 * MIB}


def test_tree_rss_of_a_gone_daemon_is_zero() -> None:
    assert trees_rss([ProcInfo(5, 1, 5, MIB)], {"gone": Root(7, None)}) == {"gone": 0}


def test_rss_over_says_which_limit_and_by_how_much() -> None:
    assert rss_over(512 * MIB, 512 * MIB) is None
    assert rss_over(10, None) is None
    reason = rss_over(600 * MIB, 512 * MIB)
    assert reason == "max_rss: resident memory 600.0 MiB is over the limit of 512.0 MiB"


# --------------------------------------------------------------------------- planned restarts
def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


@pytest.mark.parametrize(
    ("now", "times", "expected"),
    [
        ("2026-03-10 03:00", ("04:00",), "2026-03-10 04:00"),
        ("2026-03-10 04:00", ("04:00",), "2026-03-11 04:00"),  # strictly after: not again now
        ("2026-03-10 05:00", ("04:00", "23:30"), "2026-03-10 23:30"),
        ("2026-03-10 23:45", ("04:00", "23:30"), "2026-03-11 04:00"),
    ],
)
def test_next_planned_restart(now: str, times: tuple[str, ...], expected: str) -> None:
    assert next_planned(times, _at(now), PARIS) == _at(expected)


def test_next_planned_restart_across_summer_time() -> None:
    # Paris moves 02:00 -> 03:00 on 2026-03-29: 04:00 that day is 22 hours after 05:00 the day before.
    now = _at("2026-03-28 05:00")
    assert next_planned(("04:00",), now, PARIS) - now == 22 * 3600


def test_planned_due_allows_a_timer_a_little_early_only() -> None:
    assert planned_due(target=100.0, now=99.5)
    assert not planned_due(target=100.0, now=90.0)


def test_lifetime_left() -> None:
    assert lifetime_left(started=50.0, max_lifetime=10.0, now=55.0) == 5.0


# --------------------------------------------------------------------------- the Limits timers
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = _at("2026-03-10 03:59")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


class World:
    """Daemon records, a fake clock, a scripted /proc and the restarts asked for."""

    def __init__(self, *specs: DaemonSpec) -> None:
        self.clock = Clock()
        self.timers = Timers(lambda: self.clock.now)
        self.daemons = {s.name: Daemon(s) for s in specs}
        self.procs: list[ProcInfo] = []
        self.restarted: list[str] = []
        self.limits = Limits(
            self.daemons,
            timers=self.timers,
            restart=lambda d: self.restarted.append(d.name),
            wall=lambda: self.clock.wall,
            scan=lambda: self.procs,
            tz=PARIS,
        )

    def run(self, name: str, pid: int, rss: int = MIB) -> Daemon:
        d = self.daemons[name]
        d.state = State.RUNNING
        d.mark_started(pid, self.clock.now, self.clock.wall)
        self.procs.append(ProcInfo(pid, 1, pid, rss))
        self.limits.running(d)
        return d

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(min(step, end - self.clock.now))
            self.timers.run_due()


def test_no_timer_at_all_when_no_limit_is_declared() -> None:
    w = World(DaemonSpec(name="a", command=("a",)), DaemonSpec(name="b", command=("b",)))
    w.limits.declarations_changed()
    w.run("a", 10)
    w.run("b", 11)
    assert len(w.timers) == 0


def test_max_rss_is_one_timer_for_every_daemon_and_restarts_the_one_over() -> None:
    specs = [DaemonSpec(name=f"d{i}", command=("x",), max_rss=100 * MIB) for i in range(50)]
    w = World(*specs)
    w.limits.declarations_changed()
    for i in range(50):
        w.run(f"d{i}", 100 + i, rss=50 * MIB)
    assert len(w.timers) == 1
    w.advance(20.0)
    assert w.limits.checks == 4 and w.restarted == []  # every 5 s (the default), all 50 at once
    w.procs.append(ProcInfo(999, 107, 107, 60 * MIB))  # d7's child grows its tree to 110 MiB
    w.advance(5.0)
    assert w.restarted == ["d7"]
    cause = w.daemons["d7"].restart_cause
    assert cause is not None and cause.limit == "max_rss"
    assert cause.detail == "max_rss: resident memory 110.0 MiB is over the limit of 100.0 MiB"


def test_max_rss_timer_uses_the_shortest_interval_and_stops_when_none_runs() -> None:
    w = World(
        DaemonSpec(name="a", command=("a",), max_rss=10 * MIB, limit_check_interval=2.0),
        DaemonSpec(name="b", command=("b",), max_rss=10 * MIB, limit_check_interval=0.5),
    )
    w.limits.declarations_changed()
    assert len(w.timers) == 0  # declared, but nothing runs yet
    w.run("a", 10)
    w.advance(2.0)
    assert w.limits.checks == 4
    w.daemons["a"].state = State.STOPPED
    w.daemons["a"].pid = None
    w.advance(2.0)
    assert len(w.timers) == 0 and w.limits.checks == 4  # one last wake-up found none: no timer


def test_max_lifetime_restarts_once_per_run() -> None:
    w = World(DaemonSpec(name="a", command=("a",), max_lifetime=3600.0))
    d = w.run("a", 10)
    w.advance(3599.0, step=60)
    assert w.restarted == []
    w.advance(2.0)
    assert w.restarted == ["a"]
    assert d.restart_cause is not None and d.restart_cause.limit == "max_lifetime"
    assert len(w.timers) == 0  # the next run arms its own


def test_restart_at_fires_at_the_wall_clock_time() -> None:
    w = World(DaemonSpec(name="a", command=("a",), restart_at=("04:00",)))
    d = w.run("a", 10)  # at 03:59
    w.advance(59.0)
    assert w.restarted == []
    w.advance(1.5)
    assert w.restarted == ["a"]
    assert (
        d.restart_cause is not None and d.restart_cause.detail == "restart_at: its planned restart at 04:00"
    )


def test_restart_at_waits_again_when_the_wall_clock_was_set_back() -> None:
    w = World(DaemonSpec(name="a", command=("a",), restart_at=("04:00",)))
    w.run("a", 10)
    w.clock.wall -= 600  # an NTP step back ten minutes: at 04:00 monotonic, the wall says 03:50
    w.advance(61.0)
    assert w.restarted == []
    w.advance(600.0, step=10)
    assert w.restarted == ["a"]


def test_planned_timer_of_an_earlier_run_does_nothing() -> None:
    w = World(DaemonSpec(name="a", command=("a",), max_lifetime=10.0))
    d = w.run("a", 10)
    w.advance(5.0)
    d.pid = None
    d.state = State.BACKOFF  # died; not restarted yet
    w.advance(10.0)
    assert w.restarted == []
