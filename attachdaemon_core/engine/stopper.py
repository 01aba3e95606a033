"""Stopping daemons: the stop signal to the group, SIGKILL to the whole session after
``stop_timeout``, done only once the session is empty; restarts; and the final stop when the last
owner is gone (reverse ``depends_on`` order, in parallel, see :mod:`.decide.stop_order`), then the
supervisor's exit.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Mapping

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.daemon_runtime import Stop
from attachdaemon_core.engine.decide.stop_order import step_wave
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.logs import Capture
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.states import RUNNING_STATES, State
from attachdaemon_core.osproc import pidfile
from attachdaemon_core.spec.messages import signal_name

log = logging.getLogger("attachdaemon")

STOP_POLL = 0.02


class Stopper:
    """Stops, restarts and the final stop of the daemons in ``daemons``."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        os: RealOS,
        clock: Callable[[], float],
        timers: Timers,
        children: Mapping[int, object],
        prober: Prober,
        leadership: Leadership,
        capture: Capture,
        start: Callable[[Daemon], None],
        launch_leftovers: Callable[[Daemon], list[int]],
        forget_session: Callable[[int], None],
        on_finished: Callable[[], None],
    ) -> None:
        self.daemons = daemons
        self.os = os
        self.clock = clock
        self.timers = timers
        self.children = children  # pids the supervisor will reap (a leader not reaped yet is here)
        self.prober = prober
        self.leadership = leadership
        self.capture = capture
        self.start = start
        self.launch_leftovers = launch_leftovers
        self.forget_session = forget_session
        self.on_finished = on_finished
        self.final = False  # the final stop began: nothing starts any more
        self.wave: set[str] = set()
        self.scans = 0  # /proc passes made for session checks
        self.live_sids: set[int] = set()  # what the last of them found

    def set_timer(self, d: Daemon, delay: float, callback: Callable[[], None]) -> None:
        d.runtime.cancel_timer()
        d.runtime.timer = self.timers.call_later(delay, callback)

    # ------------------------------------------------------------------ stopping
    def stop(self, d: Daemon, *, sig: int | None = None, then: Callable[[], None] | None = None) -> None:
        """Stop ``d``: its stop signal to its group, SIGKILL to its session after stop_timeout."""
        d.runtime.cancel_timer()
        self.prober.cancel(d)
        existing = d.runtime.stop
        if existing is not None:
            if then is not None:
                existing.then.append(then)
            return
        if d.spec.kind != "attached" and d.pid is None:
            left = self.launch_leftovers(d)  # the launcher, if it lives, and what it started
            if left:
                self._stop_launch(d, left, sig, then)
                return
        pid = d.pid
        if pid is None:
            if d.state != State.STOPPED:
                d.set_state(State.STOPPED, "stopped while not running")
            if then is not None:
                then()
            return
        sig = d.spec.stop_signal if sig is None else sig
        stop = Stop(kill_at=self.clock() + d.spec.stop_timeout, then=[then] if then else [], pid=pid)
        d.runtime.stop = stop
        d.set_state(State.STOPPING)
        log.info("stopping daemon %r (pid %d) with %s", d.name, pid, signal_name(sig))
        if d.spec.kind == "attached":
            stop.sid = pid
            stop.scans_before = self.scans
            self.os.signal_group(pid, sig)
        else:
            self._signal_smart(d, pid, sig)
        self.set_timer(d, d.spec.stop_timeout, lambda: self._escalate(d))

    def _stop_launch(
        self, d: Daemon, pids: list[int], sig: int | None, then: Callable[[], None] | None
    ) -> None:
        """Stop what a smart daemon's launch produced, no pidfile having named the daemon yet."""
        sig = d.spec.stop_signal if sig is None else sig
        d.runtime.stop = Stop(
            kill_at=self.clock() + d.spec.stop_timeout, then=[then] if then else [], launch=True
        )
        d.set_state(State.STOPPING)
        shown = ", ".join(map(str, pids))
        log.info(
            "stopping what daemon %r's command started (pid %s) with %s",
            d.name,
            shown,
            signal_name(sig),
        )
        for pid in pids:
            self.kill_pid(pid, sig)
        self.set_timer(d, STOP_POLL, lambda: self.progress(d))

    def _signal_smart(self, d: Daemon, pid: int, sig: int) -> None:
        fd = d.runtime.pidfd
        st = self.os.stat(pid)
        if st is not None and st.pgid == pid and fd is not None:
            self.os.signal_group(pid, sig)  # group leader (uWSGI #762): the whole group
        elif fd is not None:
            self.os.pidfd_signal(fd, sig)

    def _escalate(self, d: Daemon) -> None:
        stop = d.runtime.stop
        if stop is None:
            return
        pid = d.pid if d.pid is not None else d.launcher_pid
        log.warning("daemon %r did not stop within %gs; sending SIGKILL", d.name, d.spec.stop_timeout)
        stop.killed = True
        if stop.launch:
            for left in self.launch_leftovers(d):
                self.kill_pid(left, signal.SIGKILL)
        elif stop.sid is not None:
            self.os.kill_session(stop.sid)
        elif pid is not None:
            fd = d.runtime.pidfd
            st = self.os.stat(pid)
            if st is not None and st.sid == pid:
                self.os.kill_session(pid)
            elif fd is not None:
                self.os.pidfd_signal(fd, signal.SIGKILL)
        self.set_timer(d, STOP_POLL, lambda: self.progress(d))

    def progress(self, d: Daemon) -> None:
        """Called when the leader exited or on a short poll: done once the session is empty."""
        stop = d.runtime.stop
        if stop is None:
            return
        if stop.launch:
            self._launch_progress(d, stop)
            return
        leader_gone = d.pid is None or d.pid not in self.children
        if stop.sid is not None and leader_gone:
            if self.session_empty(stop.sid, stop.scans_before):
                d.pid = None
                d.launcher_pid = None
                self.forget_session(stop.sid)
                self.done(d)
                return
            if self.clock() >= stop.kill_at:
                self.os.kill_session(stop.sid)
            self.set_timer(d, STOP_POLL, lambda: self.progress(d))
            return
        if self.clock() >= stop.kill_at and not stop.killed:
            self._escalate(d)
        else:
            self.set_timer(d, STOP_POLL, lambda: self.progress(d))

    def session_empty(self, sid: int, scans_before: int) -> bool:
        """Whether session ``sid`` has no live member left. When many daemons stop at once, one
        /proc pass answers for all whose leaders were reaped in the same wake-up: a pass made
        after the stop began that found no member is trusted (a session with no live member
        cannot gain one); one that found a member may be stale, so /proc is read again."""
        if self.scans > scans_before and sid not in self.live_sids:
            return True
        self.live_sids = self.os.live_sessions()
        self.scans += 1
        return sid not in self.live_sids

    def _launch_progress(self, d: Daemon, stop: Stop) -> None:
        launcher_unreaped = d.launcher_pid is not None and d.launcher_pid in self.children
        if not launcher_unreaped and not self.launch_leftovers(d):
            d.launcher_pid = None
            self.done(d)
        elif self.clock() >= stop.kill_at and not stop.killed:
            self._escalate(d)
        else:
            self.set_timer(d, STOP_POLL, lambda: self.progress(d))

    def done(self, d: Daemon) -> None:
        """``d`` is gone: run what waited for its stop, then go on with the final stop."""
        self.leadership.stopped(d.name)
        stop = d.runtime.take_stop()
        d.runtime.cancel_timer()
        self.capture.read_now(d.name)
        if d.spec.daemonize and d.spec.pidfile is not None and stop is not None and stop.pid:
            pidfile.remove_if_names(d.spec.pidfile, stop.pid)
        d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=True)
        if d.state != State.STOPPED:
            d.set_state(State.STOPPED)
        log.info("daemon %r stopped", d.name)
        for callback in stop.then if stop else []:
            callback()
        self.continue_wave()

    def restart(self, d: Daemon, *, sig: int | None = None) -> None:
        if d.state in RUNNING_STATES and (d.pid is not None or d.launcher_pid is not None):
            self.stop(d, sig=sig, then=lambda: self._restart_after_stop(d))
        else:
            self._restart_after_stop(d)

    def _restart_after_stop(self, d: Daemon) -> None:
        if self.final or self.daemons.get(d.name) is not d:
            return
        d.quick_deaths = 0
        if d.state != State.STARTING:
            d.set_state(State.STARTING)
        self.start(d)

    def send_signal(self, d: Daemon, sig: int) -> bool:
        pid = d.pid
        if pid is None:
            return False
        if d.spec.kind == "attached":
            return self.os.signal_group(pid, sig)
        fd = d.runtime.pidfd
        return fd is not None and self.os.pidfd_signal(fd, sig)

    def kill_pid(self, pid: int, sig: int) -> None:
        fd = self.os.pidfd_open(pid)
        if fd is not None:
            self.os.pidfd_signal(fd, sig)
            self.os.close(fd)

    # ------------------------------------------------------------------ final stop
    def begin_final_stop(self, *, smart_too: bool = False) -> None:
        """The last owner is gone: stop attached daemons (reverse depends_on), leave smart ones.

        ``smart_too`` when the server was PID 1 of its namespace: the kernel kills everything in
        it when PID 1 exits, so smart daemons are stopped cleanly with their stop signal instead.
        """
        if self.final:
            return
        self.final = True
        for d in self.daemons.values():
            if not d.stopping:  # a stop in progress keeps its timer: it drives the stop
                d.runtime.cancel_timer()
            self.prober.cancel(d)
        self.wave = {
            d.name
            for d in self.daemons.values()
            if (d.spec.kind == "attached" or smart_too or d.spec.leader is not None)
            and (d.pid is not None or d.stopping)
        }
        if smart_too and any(d.spec.kind != "attached" for d in self.daemons.values()):
            log.info("the server was PID 1 of its namespace: stopping smart daemons too")
        for d in self.daemons.values():
            unadopted = d.spec.kind != "attached" and d.pid is None and not d.stopping
            if unadopted and d.state == State.STARTING and self.launch_leftovers(d):
                self.wave.add(d.name)  # a launch whose pidfile never came: what it started is ours
                self.stop(d)
            elif d.state in (State.BACKOFF, State.STARTING) and d.pid is None and not d.stopping:
                d.set_state(State.STOPPED, "server stopping")
        self.continue_wave()

    def continue_wave(self) -> None:
        if not self.final:
            return
        step = step_wave(self.wave, self.daemons)
        self.wave = step.wave
        for name in step.stop_now:
            self.stop(self.daemons[name])
        if step.finished:
            self.on_finished()
