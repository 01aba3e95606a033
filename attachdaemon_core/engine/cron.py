"""Jobs: declarations with a ``schedule`` (docs/events.md, "Jobs"). One timer, for the next due
run of every job; each run is an attached process (its own session, reaped, swept), started and
stopped through the supervisor's own verbs, so leader locks, the final stop and ``stop``/``start``
apply to jobs as to daemons.

Owned by the ``Starter`` (engine/starter.py), which runs a job past its gates through it and
hands it each run's end; it receives the objects and callbacks it needs, nothing more.
What a fired timer means (run, skip, a wall-clock step) is decided by :mod:`.decide.schedule`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.decide.schedule import Schedule, ScheduleError, delay_until, on_timer
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.states import State

if TYPE_CHECKING:
    from datetime import tzinfo

log = logging.getLogger("attachdaemon")

# The longest sleep for a run further ahead (a yearly job): select() cannot wait 25 days, and
# a wake-up a day re-reads the wall clock (a step of it is seen within a day at the latest).
MAX_SLEEP = 86400.0


def local_zone() -> tzinfo:
    """The server's time zone with its DST rules: ``TZ``, else /etc/localtime, else UTC."""
    from datetime import timezone
    from zoneinfo import ZoneInfo

    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, KeyError):
        return timezone.utc


class Job:
    """What the supervisor knows of one job between and during its runs (the status ``job`` object)."""

    __slots__ = (
        "failed",
        "last_duration",
        "last_exit",
        "last_start",
        "last_success",
        "missed",
        "next_slot",
        "pending",
        "run_asked",
        "run_exit",
        "runs",
        "schedule",
        "skipped",
        "spec_key",
        "started_mono",
        "succeeded",
        "timed_out",
        "timeout_timer",
        "timing_out",
        "trigger",
    )

    def __init__(self, schedule: Schedule, spec_key: tuple[str, str | None]) -> None:
        self.schedule = schedule
        self.spec_key = spec_key  # (schedule, timezone) as declared
        self.next_slot: float | None = None
        self.runs = 0
        self.skipped = 0  # due while the previous run still ran (unique)
        self.timed_out = 0
        # How each run ended (the metrics' outcomes, docs/monitoring.md): exit 0, or another exit
        # or no start at all (a timed-out run is in timed_out; one stopped by command in none).
        self.succeeded = 0
        self.failed = 0
        self.last_success: float | None = None  # wall time the last run that exited 0 ended
        self.trigger = "schedule"  # why the asked run runs: schedule, start or queued
        self.missed = 0  # slots passed by a wall-clock step forward, run once instead of each
        self.pending = False  # due while the previous run still ran (not unique): runs after it
        self.run_asked = False  # the next start() of this job is a run, not its activation
        self.last_start: float | None = None
        self.last_duration: float | None = None
        self.last_exit: ExitStatus | None = None
        self.run_exit: ExitStatus | None = None  # the real exit of the current run, when reaped
        self.started_mono: float | None = None
        self.timeout_timer: Timer | None = None
        self.timing_out = False


class Starts(Protocol):
    """What the runner needs of the supervisor's ``Starter``."""

    def start(self, d: Daemon) -> None: ...  # the gates (leader lock, depends_on), then run_job

    def run_attached(self, d: Daemon) -> None: ...  # spawn it as an attached process


class CronRunner:
    """Schedules the jobs of ``daemons`` and starts their runs."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        timers: Timers,
        children: MutableMapping[int, Callable[[ExitStatus], None]],
        starter: Starts,
        stop: Callable[..., None],
        runnable: Callable[[Daemon], bool],
        wall: Callable[[], float] = time.time,
        zone: Callable[[], tzinfo] = local_zone,
    ) -> None:
        self.daemons = daemons
        self.timers = timers
        self.clock = timers.clock  # monotonic: run durations
        self.children = children
        self.starter = starter
        self.stop = stop
        self.runnable = runnable  # not held, not in the final stop
        self.wall = wall
        self.zone = zone
        self.jobs: dict[str, Job] = {}
        self.timer: Timer | None = None

    # ------------------------------------------------------------------ declarations
    def declarations_changed(self) -> None:
        """Take each job's (new) schedule; forget jobs no longer declared; one timer again."""
        for name in [n for n in self.jobs if n not in self.daemons or self.daemons[n].spec.schedule is None]:
            del self.jobs[name]
        for d in self.daemons.values():
            spec = d.spec
            if spec.schedule is None:
                continue
            job = self.jobs.get(d.name)
            key = (spec.schedule, spec.timezone)
            if job is not None and job.spec_key == key:
                continue
            try:
                schedule = Schedule(spec.schedule, self._zone_of(spec.timezone))
            except ScheduleError as exc:  # checked with the declaration: a cronsim change at most
                d.error = f"bad schedule: {exc}"
                continue
            if job is None:
                self.jobs[d.name] = job = Job(schedule, key)
            job.schedule, job.spec_key = schedule, key
            job.next_slot = schedule.next_after(self.wall())
        self._arm()

    def _zone_of(self, name: str | None) -> tzinfo:
        if name is None:
            return self.zone()
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)

    # ------------------------------------------------------------------ the one timer
    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        slots = [j.next_slot for j in self.jobs.values() if j.next_slot is not None]
        if slots:
            delay = min(delay_until(min(slots), self.wall()), MAX_SLEEP)
            self.timer = self.timers.call_later(delay, self._fired)

    def _fired(self) -> None:
        self.timer = None
        wall = self.wall()
        for name, job in list(self.jobs.items()):
            d = self.daemons.get(name)
            if d is None or job.next_slot is None:
                continue
            due = on_timer(job.schedule, job.next_slot, wall)
            job.next_slot = due.next_slot
            if not due.run:
                continue
            if due.missed:
                job.missed += due.missed
                log.warning(
                    "job %r: the wall clock jumped over %d of its runs; running it once now", name, due.missed
                )
            self.due(d, job)
        self._arm()

    # ------------------------------------------------------------------ runs
    def due(self, d: Daemon, job: Job) -> None:
        """A scheduled run is due: start it, or skip it (unique) or queue it behind the current run."""
        if d.state not in (State.SCHEDULED, State.STARTING, State.RUNNING, State.STOPPING):
            return  # held, standby (another host leads), stopped by the server: not this host's run
        if not self.runnable(d):
            return
        if d.pid is not None or d.stopping:
            if d.spec.unique:
                job.skipped += 1
                _emit(d, "job-skip", pid=d.pid)
                log.info("job %r (pid %s) still runs; this run is skipped (unique)", d.name, d.pid)
            elif not job.pending:
                job.pending = True
                log.info("job %r (pid %s) still runs; the next run starts when it ends", d.name, d.pid)
            return
        self.run(d, "scheduled")

    def run(self, d: Daemon, why: str, trigger: str = "schedule") -> None:
        """Start a run of ``d`` now, through the supervisor's start (its gates apply).
        ``trigger`` is told in its ``job-run`` event: ``schedule``, ``start`` or ``queued``."""
        job = self.jobs.get(d.name)
        if job is None or d.pid is not None or d.stopping:
            return
        job.run_asked = True
        job.trigger = trigger
        if d.state != State.STARTING:
            d.set_state(State.STARTING, why)
        self.starter.start(d)
        if d.state != State.STARTING:  # ran, or standby (another host leads: never a stale run)
            job.run_asked = False  # (still starting: waits at the depends_on gate, then runs)

    def activate_or_run(self, d: Daemon) -> None:
        """The supervisor's start reached a job past its gates: run it if a run was asked, else
        wait for the next slot (``scheduled``)."""
        job = self.jobs.get(d.name)
        if job is None or not job.run_asked:
            if job is not None:
                job.pending = False  # (a run queued before a stop or a lost lock is not owed)
            if d.state != State.SCHEDULED:
                d.set_state(State.SCHEDULED, "waiting for its next run")
            return
        job.pending = False
        job.run_asked = False
        _emit(d, "job-run", trigger=job.trigger)
        self.starter.run_attached(d)
        if d.pid is None:
            return  # the spawn failed: the supervisor's settle was told (run_ended)
        job.runs += 1
        job.last_start = d.started_at
        job.started_mono = self.clock()
        job.run_exit = None
        job.timing_out = False
        pid = d.pid
        reaped = self.children.get(pid)
        if reaped is not None:  # keep the real exit: a stop for a timeout records a synthetic one
            self.children[pid] = lambda status: self._reaped(job, status, reaped)
        if d.spec.timeout is not None:
            job.timeout_timer = self.timers.call_later(d.spec.timeout, lambda: self._timed_out(d, job, pid))

    def _reaped(self, job: Job, status: ExitStatus, then: Callable[[ExitStatus], None]) -> None:
        job.run_exit = status
        then(status)

    def _timed_out(self, d: Daemon, job: Job, pid: int) -> None:
        job.timeout_timer = None
        if d.pid != pid or d.stopping:
            return
        job.timed_out += 1
        job.timing_out = True
        _emit(d, "job-timeout", pid=pid, timeout=d.spec.timeout)
        log.warning(
            "job %r (pid %d) ran longer than its timeout of %gs; stopping it", d.name, pid, d.spec.timeout
        )
        self.stop(d, then=lambda: self.run_ended(d, "was stopped after its timeout"))

    def run_ended(self, d: Daemon, what: str) -> None:
        """A run ended (exited, failed to start, or stopped): record it, wait for the next slot."""
        job = self.jobs.get(d.name)
        if job is None:
            return
        if job.timeout_timer is not None:
            job.timeout_timer.cancel()
            job.timeout_timer = None
        if job.started_mono is not None:
            job.last_duration = round(self.clock() - job.started_mono, 3)
            job.started_mono = None
        job.last_exit = job.run_exit or d.last_exit
        if job.run_exit is not None:
            d.last_exit = job.run_exit
        job.run_exit = None
        self._count(d, job)
        level = logging.INFO if job.last_exit is not None and job.last_exit.success else logging.WARNING
        log.log(level, "job %r %s", d.name, what)
        if d.state == State.STOPPED and not self.runnable(d):
            return  # held, or the server stops: stay stopped
        if d.state not in (State.SCHEDULED, State.STANDBY):
            d.set_state(State.SCHEDULED, "waiting for its next run")
        if job.pending and self.runnable(d):
            self.run(d, "queued behind the previous run", "queued")

    def _count(self, d: Daemon, job: Job) -> None:
        """Count the run that ended in one outcome (a timed-out one was counted at its timeout)."""
        last = job.last_exit
        if job.timing_out:
            job.timing_out = False
        elif last is not None and last.success:
            job.succeeded += 1
            job.last_success = last.at
        else:  # another exit, or it could not start (exit 127)
            job.failed += 1

    # ------------------------------------------------------------------ status
    def status(self, d: Daemon) -> dict[str, Any] | None:
        """The ``job`` object of the status JSON (docs/status-json.md), None for a daemon."""
        job = self.jobs.get(d.name)
        if job is None or d.spec.schedule is None:
            return None
        last = job.last_exit
        return {
            "schedule": d.spec.schedule,
            "timezone": d.spec.timezone,
            "unique": d.spec.unique,
            "timeout": d.spec.timeout,
            "next_run": job.next_slot,
            "last_start": job.last_start,
            "last_duration": job.last_duration,
            "last_exit": {"code": last.code, "signal": last.signal, "at": last.at} if last else None,
            "runs": job.runs,
            "skipped": job.skipped,
            "timed_out": job.timed_out,
            "missed": job.missed,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "last_success": job.last_success,
        }


def _emit(d: Daemon, event: str, **fields: object) -> None:
    """Tell the event stream (docs/monitoring.md) of one of a job's runs."""
    if d.events is not None:
        d.events.emit(event, d.name, **fields)
