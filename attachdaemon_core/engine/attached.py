"""Attached daemons: spawned in a session of their own, reaped by the supervisor, restarted by
their policy; whatever a session leaves behind is swept, and a command that daemonizes itself
is caught rather than restarted into a second copy.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable, Iterable, MutableMapping

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.logs import Capture
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc import proc

log = logging.getLogger("attachdaemon")


class AttachedRunner:
    """Starts attached daemons and handles their exits."""

    def __init__(
        self,
        *,
        os: RealOS,
        clock: Callable[[], float],
        timers: Timers,
        children: MutableMapping[int, Callable[[ExitStatus], None]],
        capture: Capture,
        spawn: Callable[[Daemon], int | None],
        now_running: Callable[[Daemon], None],
        settle: Callable[[Daemon, State, float, str], None],
        stop_progress: Callable[[Daemon], None],
        kill_pid: Callable[[int, int], None],
        known_pids: Callable[[], Iterable[int]],
        launched_elsewhere: Callable[[int], bool],
        tell_guard: Callable[[str], None],
        save_state: Callable[[], None],
    ) -> None:
        self.os = os
        self.clock = clock
        self.timers = timers
        self.children = children
        self.capture = capture
        self.spawn = spawn
        self.now_running = now_running
        self.settle = settle
        self.stop_progress = stop_progress
        self.kill_pid = kill_pid
        self.known_pids = known_pids
        self.launched_elsewhere = launched_elsewhere  # produced by a pending smart launch of ours
        self.tell_guard = tell_guard
        self.save_state = save_state
        self.sessions: dict[int, int] = {}  # sid -> its leader's /proc start time (the state file's)

    def start(self, d: Daemon) -> None:
        pid = self.spawn(d)
        if pid is None:
            return
        d.mark_started(pid, self.clock(), time.time())
        self.children[pid] = functools.partial(self.exited, d, pid)
        st = self.os.stat(pid)
        # Its start time identifies the session for the guard; gone already: about now (ticks).
        self.sessions[pid] = st.starttime if st else int((self.os.boot_seconds() - 1) * proc.CLK_TCK)
        self.tell_guard(f"+ {pid} {self.sessions[pid]}")
        log.info("daemon %r started (pid %d)", d.name, pid)
        self.now_running(d)
        self.save_state()

    def exited(self, d: Daemon, pid: int, status: ExitStatus) -> None:
        self.capture.read_now(d.name)
        if d.pid != pid:
            self.forget_session(pid)
            return
        if d.stopping:
            self.stop_progress(d)
            return
        started_ticks = self.sessions.get(pid, 0)  # its /proc start time, in ticks
        ran = self.clock() - d.started_mono if d.started_mono is not None else 0.0
        # A quick exit 0 that leaves a child of the daemon in its session caught a daemonizing
        # command between its fork and its setsid: the same signature as a copy that got out.
        forked = (
            self._forked_in_session(started_ticks, pid) if status.success and ran < d.spec.min_uptime else []
        )
        # Anything its session still holds is an orphan in the making. Its own process group
        # (one syscall to test) is ended now, before the restart; other groups of the session,
        # rare, are swept right after the restart, the session still recorded for the guard.
        if self.os.group_exists(pid):
            self._sweep_session(d.name, pid)
        else:
            self.timers.call_later(0.0, functools.partial(self._sweep_session, d.name, pid))
        decision = d.decide_after_exit(status, self.clock(), stopping=False)
        d.tell(decision)
        escaped = self._escaped_orphans(started_ticks, pid) if status.success else []
        if escaped or forked:
            self._daemonized_while_attached(d, escaped, forked)
            return
        self.settle(d, decision.state, decision.delay, f"(pid {pid}) {status.describe()}")

    def _sweep_session(self, name: str, sid: int) -> None:
        leftover = self.os.kill_session(sid)
        if leftover:
            log.info("daemon %r left %d process(es) in its session; killed", name, leftover)
        self.forget_session(sid)

    def _forked_in_session(self, since_ticks: int, sid: int) -> list[proc.Stat]:
        """Processes still in session ``sid``, handed to us when the daemon exited (their parent
        was the daemon), started no earlier than it: what a daemonizing fork leaves before its
        setsid. Read before the session is swept. Without a subreaper (the portable layer) such an
        orphan went to init or another reaper: a member whose parent is outside the session."""
        me = self.os.getpid()
        members = self.os.session_members(sid)
        found = []
        for pid in members:
            st = self.os.stat(pid)
            if st is None or st.starttime < since_ticks or pid == sid:
                continue
            if st.ppid == me or (not self.os.subreaper and st.ppid not in members):
                found.append(st)
        return found

    def _escaped_orphans(self, since_ticks: int, sid: int) -> list[proc.Stat]:
        """Processes handed to us (as subreaper) that started no earlier than the daemon did
        (``since_ticks``: both start times in /proc clock ticks, one clock), are nobody's, and
        left session ``sid`` (those still in it were just killed with it). A smart daemon's
        launch whose pidfile is not written yet leaves such orphans too (a launcher's background
        child): those are that daemon's, never this one's copy, and are left alone."""
        known = set(self.children) | set(self.known_pids())
        me = self.os.getpid()
        found = []
        for pid in self.os.proc_pids():
            if pid in known:
                continue
            st = self.os.stat(pid)
            if st is None or st.sid == sid or st.state == "Z":
                continue
            if st.ppid == me and st.starttime >= since_ticks and not self.launched_elsewhere(pid):
                found.append(st)
        return found

    def _daemonized_while_attached(
        self, d: Daemon, escaped: list[proc.Stat], forked: list[proc.Stat]
    ) -> None:
        """An attached daemon exited 0 leaving a background copy: it daemonizes itself. Restarting
        it would start a second copy each time, so end the copy and stop here, saying why. Copies
        still in its session (``forked``) were ended with the session; ``escaped`` ones are
        stopped here."""
        names = ", ".join(f"pid {st.pid} ({st.comm})" for st in [*forked, *escaped])
        d.error = (
            f"exited at once leaving {names} running in the background: the command daemonizes "
            "itself. Keep it in the foreground (e.g. redis-server --daemonize no), or declare its "
            "pidfile to make it a smart daemon"
        )
        log.error("daemon %r %s; that copy was stopped and the daemon is not restarted", d.name, d.error)
        d.ready = None  # (a one-shot that did this did not complete: docs/declarations.md)
        for st in escaped:
            self.kill_pid(st.pid, d.spec.stop_signal)
            self.timers.call_later(
                d.spec.stop_timeout, functools.partial(self.kill_pid, st.pid, signal.SIGKILL)
            )
        if d.state != State.FATAL:
            d.set_state(State.FATAL, d.error)

    def forget_session(self, sid: int) -> None:
        if self.sessions.pop(sid, None) is not None:
            self.tell_guard(f"- {sid}")
            self.save_state()
