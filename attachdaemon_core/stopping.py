"""Stopping daemons: the stop signal to the group, SIGKILL to the whole session after
``stop_timeout``, done only once the session is empty; restarts; and the final stop when the last
owner is gone (reverse ``depends_on`` order, in parallel), then the supervisor's exit.

Part of the supervisor (:class:`~attachdaemon_core.supervisor.Supervisor` inherits it).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from . import pidfile, proc
from .daemon import Daemon, ExitStatus
from .engine.daemon_runtime import Stop
from .engine.decide.stop_order import step_wave
from .messages import signal_name
from .parts import SupervisorParts
from .states import RUNNING_STATES, State

log = logging.getLogger("attachdaemon")

STOP_POLL = 0.02


class Stopping(SupervisorParts):
    """Stops, restarts and the final stop."""

    # ------------------------------------------------------------------ stopping
    def stop(self, d: Daemon, *, sig: int | None = None, then: Callable[[], None] | None = None) -> None:
        """Stop ``d``: its stop signal to its group, SIGKILL to its session after stop_timeout."""
        self._cancel_daemon_timer(d)
        self.prober.cancel(d)
        existing = d.runtime.stop
        if existing is not None:
            if then is not None:
                existing.then.append(then)
            return
        if d.spec.kind != "attached" and d.pid is None:
            left = self._launch_leftovers(d)  # the launcher, if it lives, and what it started
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
            proc.signal_group(pid, sig)
        else:
            self._signal_smart(d, pid, sig)
        self._set_daemon_timer(d, d.spec.stop_timeout, lambda: self._stop_escalate(d))

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
            self._kill_pid(pid, sig)
        self._set_daemon_timer(d, STOP_POLL, lambda: self._stop_progress(d))

    def _signal_smart(self, d: Daemon, pid: int, sig: int) -> None:
        fd = d.runtime.pidfd
        st = proc.stat(pid)
        if st is not None and st.pgid == pid and fd is not None:
            proc.signal_group(pid, sig)  # group leader (uWSGI #762): the whole group
        elif fd is not None:
            proc.pidfd_signal(fd, sig)

    def _stop_escalate(self, d: Daemon) -> None:
        stop = d.runtime.stop
        if stop is None:
            return
        pid = d.pid if d.pid is not None else d.launcher_pid
        log.warning("daemon %r did not stop within %gs; sending SIGKILL", d.name, d.spec.stop_timeout)
        stop.killed = True
        if stop.launch:
            for left in self._launch_leftovers(d):
                self._kill_pid(left, signal.SIGKILL)
        elif stop.sid is not None:
            proc.kill_session(stop.sid)
        elif pid is not None:
            fd = d.runtime.pidfd
            st = proc.stat(pid)
            if st is not None and st.sid == pid:
                proc.kill_session(pid)
            elif fd is not None:
                proc.pidfd_signal(fd, signal.SIGKILL)
        self._set_daemon_timer(d, STOP_POLL, lambda: self._stop_progress(d))

    def _stop_progress(self, d: Daemon) -> None:
        """Called when the leader exited or on a short poll: done once the session is empty."""
        stop = d.runtime.stop
        if stop is None:
            return
        if stop.launch:
            launcher_unreaped = d.launcher_pid is not None and d.launcher_pid in self.children
            if not launcher_unreaped and not self._launch_leftovers(d):
                d.launcher_pid = None
                self._stop_done(d)
            elif self.clock() >= stop.kill_at and not stop.killed:
                self._stop_escalate(d)
            else:
                self._set_daemon_timer(d, STOP_POLL, lambda: self._stop_progress(d))
            return
        leader_gone = d.pid is None or d.pid not in self.children
        if stop.sid is not None and leader_gone:
            members = proc.session_members(stop.sid)
            if not members:
                d.pid = None
                d.launcher_pid = None
                self._forget_session(stop.sid)
                self._stop_done(d)
                return
            if self.clock() >= stop.kill_at:
                proc.kill_session(stop.sid)
            self._set_daemon_timer(d, STOP_POLL, lambda: self._stop_progress(d))
            return
        if self.clock() >= stop.kill_at and not stop.killed:
            self._stop_escalate(d)
        else:
            self._set_daemon_timer(d, STOP_POLL, lambda: self._stop_progress(d))

    def _stop_done(self, d: Daemon) -> None:
        self.leadership.stopped(d.name)
        stop = d.runtime.take_stop()
        self._cancel_daemon_timer(d)
        self.capture.read_now(d.name)
        if d.spec.daemonize and d.spec.pidfile is not None and stop is not None and stop.pid:
            pidfile.remove_if_names(d.spec.pidfile, stop.pid)
        d.decide_after_exit(ExitStatus(None, None, time.time()), self.clock(), stopping=True)
        if d.state != State.STOPPED:
            d.set_state(State.STOPPED)
        log.info("daemon %r stopped", d.name)
        for callback in stop.then if stop else []:
            callback()
        self._continue_wave()

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
            return proc.signal_group(pid, sig)
        fd = d.runtime.pidfd
        return fd is not None and proc.pidfd_signal(fd, sig)

    def _kill_pid(self, pid: int, sig: int) -> None:
        fd = proc.pidfd_open(pid)
        if fd is not None:
            proc.pidfd_signal(fd, sig)
            os.close(fd)

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
                self._cancel_daemon_timer(d)
            self.prober.cancel(d)
        self._wave = {
            d.name
            for d in self.daemons.values()
            if (d.spec.kind == "attached" or smart_too or d.spec.leader is not None)
            and (d.pid is not None or d.stopping)
        }
        if smart_too and any(d.spec.kind != "attached" for d in self.daemons.values()):
            log.info("the server was PID 1 of its namespace: stopping smart daemons too")
        for d in self.daemons.values():
            unadopted = d.spec.kind != "attached" and d.pid is None and not d.stopping
            if unadopted and d.state == State.STARTING and self._launch_leftovers(d):
                self._wave.add(d.name)  # a launch whose pidfile never came: what it started is ours
                self.stop(d)
            elif d.state in (State.BACKOFF, State.STARTING) and d.pid is None and not d.stopping:
                d.set_state(State.STOPPED, "server stopping")
        self._continue_wave()

    def _continue_wave(self) -> None:
        if not self.final:
            return
        step = step_wave(self._wave, self.daemons)
        self._wave = step.wave
        for name in step.stop_now:
            self.stop(self.daemons[name])
        if step.finished:
            self.exiting = True

    def shutdown_cleanup(self) -> None:
        self.leadership.drop_all()
        self.write_state()
        self.control.close()
        self.capture.close_all()
        self.output.flush()
        self._tell_guard("exit")
        log.info("supervisor exiting")
