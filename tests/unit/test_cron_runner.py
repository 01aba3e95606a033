"""The CronRunner's decisions with an injected clock and recorded starts (no process): one timer
for every job, a run due while one runs (unique: skipped; else queued), a wall-clock step
forward (one run, the rest counted as missed) and back (nothing runs twice)."""

from __future__ import annotations

from datetime import timezone

import pytest

from attachdaemon_core.engine.cron import CronRunner
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # a wall-clock time on a minute boundary (2027-01-15 08:00:00 UTC)


class World:
    """A monotonic clock, a wall clock that can be stepped, and the runs the runner asked for."""

    def __init__(self, *specs: DaemonSpec) -> None:
        self.mono = 100.0
        self.step = 0.0  # wall - mono offset changes when the wall clock is stepped
        self.timers = Timers(lambda: self.mono)
        self.daemons = {s.name: Daemon(s) for s in specs}
        self.spawned: list[str] = []
        self.next_pid = 1000
        self.cron = CronRunner(
            self.daemons,
            timers=self.timers,
            children={},
            starter=self,
            stop=lambda d, then=None: None,
            runnable=lambda d: True,
            wall=lambda: T0 - 100.0 + self.mono + self.step,
            zone=lambda: timezone.utc,
        )
        for d in self.daemons.values():
            self.start(d)  # as the supervisor's apply does: activates each job
        self.cron.declarations_changed()

    def start(self, d: Daemon) -> None:
        self.cron.activate_or_run(d)

    def run_attached(self, d: Daemon) -> None:
        self.next_pid += 1
        d.mark_started(self.next_pid, self.mono, T0 + self.mono)
        d.set_state(State.RUNNING)
        self.spawned.append(d.name)

    def end(self, name: str) -> None:
        d = self.daemons[name]
        d.tell(d.decide_after_exit(ExitStatus(0, None, T0), self.mono, stopping=False))
        self.cron.run_ended(d, "exited with status 0")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of monotonic time pass, firing timers as the loop would."""
        end = self.mono + seconds
        while (t := self.timers.timeout()) is not None and self.mono + t <= end:
            self.mono += t
            self.timers.run_due()
        self.mono = end


def job(name: str, schedule: str, **kw: object) -> DaemonSpec:
    return DaemonSpec(name=name, command=("true",), schedule=schedule, on_reload="keep", **kw)  # type: ignore[arg-type]


def test_one_timer_serves_every_job() -> None:
    w = World(job("a", "* * * * *"), job("b", "*/5 * * * *"), job("c", "0 0 1 1 *"))
    assert len(w.timers) == 1
    assert all(d.state == State.SCHEDULED for d in w.daemons.values())
    w.advance(60)
    assert w.spawned == ["a"]  # 08:01: 'b' waits for 08:05
    w.advance(240)
    assert w.spawned == ["a", "b"]  # ('a' still runs: its 08:02-08:05 runs wait behind it)
    assert len(w.timers) == 1


def test_unique_skips_and_not_unique_queues_one_run() -> None:
    w = World(job("u", "* * * * *", unique=True), job("q", "* * * * *"))
    w.advance(60)
    assert w.spawned == ["u", "q"]
    w.advance(180)  # three more slots while both still run
    assert w.cron.jobs["u"].skipped == 3 and w.cron.jobs["q"].pending
    assert w.spawned == ["u", "q"]
    w.end("q")  # the queued run starts at once, one run for the three slots
    assert w.spawned == ["u", "q", "q"] and not w.cron.jobs["q"].pending
    w.end("u")
    assert w.daemons["u"].state == State.SCHEDULED


def test_a_forward_step_runs_once_and_counts_the_missed_runs() -> None:
    w = World(job("a", "* * * * *"))
    w.step = 600.0  # the wall clock jumps 10 minutes ahead
    w.advance(60)
    assert w.spawned == ["a"] and w.cron.jobs["a"].missed == 10


def test_a_backward_step_never_runs_a_slot_twice() -> None:
    w = World(job("a", "* * * * *"))
    w.advance(60)
    w.end("a")
    assert w.spawned == ["a"]
    w.step = -300.0  # the wall clock goes 5 minutes back: the slot that ran comes again
    w.advance(299)
    assert w.spawned == ["a"]  # nothing: it waits for the slot after the one that ran
    w.advance(61)
    assert w.spawned == ["a", "a"] and w.cron.jobs["a"].missed == 0
