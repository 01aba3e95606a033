"""One daemon's record and the pure decisions about it: state changes, restart policy, backoff.

Nothing here touches a process; the supervisor acts on what these methods decide. Times are
passed in (``now`` is monotonic), so tests replay histories with a fake clock.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from attachdaemon_core.engine.daemon_runtime import DaemonRuntime
from attachdaemon_core.engine.decide.backoff import backoff_delay
from attachdaemon_core.engine.events import EventLog
from attachdaemon_core.engine.states import State, check_transition
from attachdaemon_core.spec.model import DaemonSpec

__all__ = ["Daemon", "Decision", "ExitStatus", "Launch", "RestartCause", "backoff_delay"]

log = logging.getLogger("attachdaemon")

LOG_RING_LINES = 500


@dataclass(frozen=True)
class ExitStatus:
    code: int | None
    signal: int | None
    at: float  # wall clock

    def describe(self) -> str:
        if self.signal is not None:
            try:
                return f"was killed by {signal.Signals(self.signal).name}"
            except ValueError:
                return f"was killed by signal {self.signal}"
        if self.code is None:
            return "exited (status unknown)"
        return f"exited with status {self.code}"

    @property
    def success(self) -> bool:
        return self.code == 0 and self.signal is None


@dataclass(frozen=True)
class Decision:
    """What to do after a daemon ended: restart after ``delay`` seconds, or settle in ``state``;
    and what to tell when acting on it (:meth:`Daemon.tell`): ``events`` to emit, in order, and
    ``ready`` for a one-shot that completed."""

    state: State
    delay: float = 0.0
    reason: str = ""
    events: tuple[tuple[str, dict[str, object]], ...] = ()
    ready: bool = False


@dataclass(frozen=True)
class RestartCause:
    """Why the supervisor itself restarted a running daemon: a limit or the watchdog
    (docs/status-json.md, ``restart_cause``)."""

    limit: str  # "max_rss", "max_lifetime", "restart_at" or "watchdog"
    detail: str
    at: float  # wall clock


@dataclass(frozen=True)
class Launch:
    """One run of a smart daemon's command. Every spawn starts a session, so ``pid`` is also the
    session id; ``starttime`` is its /proc start time (ticks since boot). Whatever this run
    produced (the launcher, its session, its descendants, what carries the daemon's marker and
    started since) is the daemon's, whatever its name."""

    pid: int
    starttime: int
    log_offset: int = 0  # the daemon's log file size when launched: its output starts there
    line_seq: int = 0  # the ring buffer's sequence number when launched (``prefix`` logs)


class Daemon:
    """The supervisor's record of one declared daemon."""

    def __init__(
        self, spec: DaemonSpec, *, rand: Callable[[], float] | None = None, events: EventLog | None = None
    ) -> None:
        self.spec = spec
        self.events = events  # where its changes are told (docs/monitoring.md); None: nowhere
        self.state = State.STOPPED
        self.pid: int | None = None
        self.launcher_pid: int | None = None  # smart: the command we ran, until the pidfile names the daemon
        self.launch: Launch | None = None  # smart: our latest run of its command
        self.launch_exit: ExitStatus | None = None  # how that command ended, if it did
        self.pgid: int | None = None  # smart: the watched pid's process group
        self.adopted = False  # pid came from a verified pidfile, not from our own spawn
        self.started_at: float | None = None  # wall clock
        self.started_mono: float | None = None
        self.restarts = 0
        self.spawns = 0
        self.quick_deaths = 0
        self.last_exit: ExitStatus | None = None
        self.error: str | None = None
        self._ready: bool | None = None
        self._fatal_reason: str | None = None  # why the last decision gave up, for the event
        self.stop_reason = ""
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_RING_LINES)
        self.line_seq = 0
        self.cpu_sample: tuple[float, float] | None = None  # (monotonic, cpu seconds)
        self.cpu_percent: float | None = None
        self.restart_cause: RestartCause | None = None  # the last restart a limit or watchdog caused
        self.tree_rss: int | None = None  # its process tree's resident bytes at the last max_rss check
        self.status_text: str | None = None  # sd_notify STATUS= of the current run
        self.phase: str | None = None  # sd_notify: "reloading" or "stopping" (current run)
        self.line_watch: Callable[[str], None] | None = None  # a log readiness probe's matcher
        self._rand = rand
        # Told of every state change (old, new): the supervisor's dependents (engine/dependents.py).
        self.on_state: Callable[[Daemon, State, State], None] | None = None
        self.runtime = DaemonRuntime()  # the supervisor's live state for it: handles, timer, stop

    @property
    def stopping(self) -> bool:
        """A stop is in progress."""
        return self.runtime.stop is not None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ready(self) -> bool | None:
        """True once its ``ready`` probe passed (or at once without one); None when not running."""
        return self._ready

    @ready.setter
    def ready(self, value: bool | None) -> None:
        if value and not self._ready:
            self._emit("ready", pid=self.pid)
        self._ready = value

    def _emit(self, event: str, **fields: object) -> None:
        if self.events is not None:
            self.events.emit(event, self.name, **fields)

    def set_state(self, new: State, why: str = "") -> None:
        """Every state change goes through here: checked, logged, timed, and told as an event
        when it is one of the stream's (docs/monitoring.md)."""
        old = self.state
        check_transition(old, new)
        self.state = new
        if old == new:
            return
        log.debug("daemon %r: %s -> %s%s", self.name, old.value, new.value, f" ({why})" if why else "")
        if new == State.RUNNING:
            self._emit("started", pid=self.pid, adopted=self.adopted)
        elif new == State.FATAL:
            self._emit("fatal", reason=why or self._fatal_reason or self.error)
        elif new == State.STOPPED and old != State.STOPPED:
            self._emit("stopped", reason=why or self.stop_reason or None)
        if self.on_state is not None:
            self.on_state(self, old, new)

    def mark_started(self, pid: int, now: float, wall: float, *, adopted: bool = False) -> None:
        self.pid = pid
        self.adopted = adopted
        self.started_mono = now
        self.started_at = wall
        self.error = None
        if not adopted:
            self.spawns += 1
            if self.spawns > 1:
                self.restarts += 1

    def decide_after_exit(self, status: ExitStatus, now: float, *, stopping: bool) -> Decision:
        """Given how a run ended, decide the next state and any restart delay, and what the caller
        tells when it acts on that (:meth:`tell`): a run that ended by itself as ``exited``, a
        restart it leads to as ``restarting``; a one-shot is ready once a run ends with status 0
        and it rests (docs/declarations.md, "One-shot tasks"). Emits nothing itself."""
        told: list[tuple[str, dict[str, object]]] = []
        if not stopping:
            ended = {"pid": self.pid, "code": status.code, "signal": status.signal}
            told.append(("exited", {**ended, "status": status.describe()}))
        decision = self._decide(status, now, stopping=stopping)
        self._fatal_reason = decision.reason if decision.state == State.FATAL else None
        if decision.state in (State.BACKOFF, State.STARTING) and not stopping and self.spec.schedule is None:
            told.append(self._restarting(decision))
        ready = self.spec.oneshot and decision.state == State.EXITED and status.success
        return dataclasses.replace(decision, events=tuple(told), ready=ready)

    def tell(self, decision: Decision) -> None:
        """Act on what ``decision`` says to tell: its events, in order, then a one-shot's readiness."""
        for event, fields in decision.events:
            self._emit(event, **fields)
        if decision.ready:
            self.ready = True

    def _restarting(self, decision: Decision) -> tuple[str, dict[str, object]]:
        return ("restarting", {"delay": round(decision.delay, 3), "quick_deaths": self.quick_deaths})

    def _decide(self, status: ExitStatus, now: float, *, stopping: bool) -> Decision:
        ran = (now - self.started_mono) if self.started_mono is not None else 0.0
        self.last_exit = status
        self.pid = None
        self.launcher_pid = None
        self.adopted = False
        self.ready = None
        self.status_text = self.phase = None
        self.tree_rss = None
        if stopping:
            return Decision(State.STOPPED, reason="stopped")
        spec = self.spec
        if spec.control:
            return Decision(State.FATAL, reason=f"control daemon {status.describe()}")
        if spec.restart == "never" or (spec.restart == "on-failure" and status.success):
            return Decision(State.EXITED, reason=f"{status.describe()}; restart is {spec.restart!r}")
        if ran >= spec.min_uptime:
            self.quick_deaths = 0
        self.quick_deaths += 1
        if spec.max_retries is not None and self.quick_deaths > spec.max_retries:
            return Decision(
                State.FATAL,
                reason=f"{status.describe()}; gave up after {spec.max_retries} quick restarts",
            )
        delay = backoff_delay(self.quick_deaths, spec, self._rand)
        return Decision(State.BACKOFF if delay > 0 else State.STARTING, delay, status.describe())

    def decide_after_spawn_failure(self, reason: str, now: float) -> Decision:
        """A start that failed before exec counts as a quick death; told as ``start-failed``, and
        ``restarting`` when it leads to a restart (by the caller, with :meth:`tell`)."""
        self.error = reason
        self.pid = None
        self.started_mono = now
        self.spawns += 1
        if self.spawns > 1:
            self.restarts += 1
        told: list[tuple[str, dict[str, object]]] = [("start-failed", {"reason": reason})]
        decision = self._decide(ExitStatus(127, None, 0.0), now, stopping=False)
        self._fatal_reason = f"{reason}; {decision.reason}" if decision.state == State.FATAL else None
        if decision.state in (State.BACKOFF, State.STARTING) and self.spec.schedule is None:
            told.append(self._restarting(decision))
        return dataclasses.replace(decision, events=tuple(told))

    def add_line(self, line: str) -> None:
        self.lines.append(line)
        self.line_seq += 1
        if self.line_watch is not None:
            self.line_watch(line)
