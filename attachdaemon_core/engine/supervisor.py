"""The supervisor process: one selector loop over pidfds, a signal wake-up fd, timers and the
control socket, and the wiring of the parts of ``engine/`` it composes (docs/process-model.md).

Runs in a process forked from the guard (``python -m attachdaemon_core guard``; named
``ad-supervisor``), single-threaded, a child subreaper that reaps every child on SIGCHLD. Nothing
polls unless a daemon needs it. The parts, each given the objects and callbacks it needs: the
``Starter`` (launching; jobs too), the runners per kind (``AttachedRunner``, ``SmartRunner``), the
``Stopper``, ``Declarations`` (applying them), ``Owners``, ``LeaderLink``, the ``StateFile``,
``Upkeep``, the ``Watches`` (limits, notify sockets) and ``ControlAnswers`` (the verbs).
Decisions are pure functions (``engine/decide/``); acts go through an OS seam that tests replace.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import time
from collections.abc import Callable

from attachdaemon_core.control.server import ControlServer
from attachdaemon_core.engine import launch_request, launches, watch
from attachdaemon_core.engine.apply import Declarations
from attachdaemon_core.engine.attached import AttachedRunner
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.leader_link import LeaderLink
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.logs import Capture, Output
from attachdaemon_core.engine.loop import SignalWake, Timer, Timers, reap_children
from attachdaemon_core.engine.os_seam import REAL_OS, RealOS
from attachdaemon_core.engine.owners import Owners
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.runtime_dir import LOCK_FILE, RuntimeDir
from attachdaemon_core.engine.smart import SmartRunner
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.state_file import LOG_FILE, StateFile, configure_logging
from attachdaemon_core.engine.stopper import Stopper
from attachdaemon_core.engine.upkeep import Upkeep
from attachdaemon_core.engine.verbs import ControlAnswers
from attachdaemon_core.engine.watches import Watches
from attachdaemon_core.osproc.spawn import (
    reset_signal_dispositions,
    set_process_name,
)

log = logging.getLogger("attachdaemon")
_join = os.path.join  # (``os`` is also the name of the OS seam ``Supervisor`` is given)

EXIT_OK = 0
EXIT_LOCKED = 75  # another supervisor holds this runtime directory (never 3 or 4: gunicorn < 26.1)
EXIT_NO_OWNER = 76
NO_OWNER_GRACE = 10.0  # a fresh supervisor that gets no owner in this time exits
TOUCH_EVERY = 1.0


class Supervisor:
    """The supervisor process: its loop, and the wiring of the parts it composes. Each part is
    given the objects and callbacks it needs; a callback into a part built later is a lambda."""

    def __init__(
        self,
        runtime_dir: str,
        *,
        guard_fd: int | None = None,
        respawns: int = 0,
        clock: Callable[[], float] = time.monotonic,
        os: RealOS = REAL_OS,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.guard_fd = guard_fd
        self.respawns = respawns
        self.clock = clock
        self.os = os
        self.selector = selectors.DefaultSelector()
        self.timers = Timers(clock)
        # What the parts share, each changed in place: the declared daemons, the names held by
        # command, the owners' environment, the children to reap and the exits reaped early.
        self.daemons: dict[str, Daemon] = {}
        self.held: set[str] = set()
        self.env: dict[str, str] = {}
        self.children: dict[int, Callable[[ExitStatus], None]] = {}
        self.exit_status: dict[int, ExitStatus] = {}
        self.smart_known: dict[str, tuple[int, int]] = {}  # see SmartRunner.smart_known
        self.exiting = False
        self.exit_code = EXIT_OK
        self.started_at = time.time()
        self.signals = SignalWake(self.selector, self._on_signal)
        self._sweep_timer: Timer | None = None
        self.watcher: watch.Watcher
        self.output = Output(2)
        self.capture = Capture(self.selector, self.output)
        self.control = ControlServer(
            _join(runtime_dir, "control.sock"),
            self.selector,
            lambda verb, args, peer: self.answers.handle(verb, args, peer),
        )
        self.dir = RuntimeDir(runtime_dir, self.control, started_at=self.started_at)
        self.leadership = Leadership(
            self.selector,
            self.timers,
            os=os,
            children=self.children,
            on_acquired=lambda name: self.leader_link.acquired(name),
            on_lost=lambda name, reason: self.leader_link.lost(name, reason),
            wanted=lambda name: self.leader_link.wanted(name),
        )
        self.starter = Starter(
            self.daemons,
            held=self.held,
            env=self.env,
            runtime_dir=runtime_dir,
            os=os,
            clock=clock,
            timers=self.timers,
            children=self.children,
            capture=self.capture,
            leadership=self.leadership,
            prober=lambda: self.prober,
            run_attached=lambda d: self.attached.start(d),
            run_smart=lambda d: self.smart.start(d),
            stop_job=lambda d, then=None: self.stopper.stop(d, then=then),
            final=lambda: self.final,
            shut_down_owners=lambda: self.owner_set.shut_down(),
            restart=lambda d: self.stopper.restart(d),
        )
        self.prober = Prober(
            self.selector,
            self.timers,
            run_child=self.starter.run_probe_child,
            kill=lambda pid, sig: self.stopper.kill_pid(pid, sig),
            on_ready=self.starter.became_ready,
        )
        self.attached = AttachedRunner(
            os=os,
            clock=clock,
            timers=self.timers,
            children=self.children,
            capture=self.capture,
            spawn=lambda d: self.starter.spawn(d, attached=True),
            now_running=self.starter.now_running,
            settle=self.starter.settle,
            stop_progress=lambda d: self.stopper.progress(d),
            kill_pid=lambda pid, sig: self.stopper.kill_pid(pid, sig),
            known_pids=lambda: [d.pid for d in self.daemons.values() if d.pid is not None],
            launched_elsewhere=lambda pid: any(
                launches.from_launch(d, pid, procs=os) for d in self.daemons.values()
            ),
            tell_guard=self._tell_guard,
            save_state=self.save_state,
        )
        self.smart = SmartRunner(
            os=os,
            clock=clock,
            timers=self.timers,
            selector=self.selector,
            children=self.children,
            exit_status=self.exit_status,
            env=self.env,
            smart_known=self.smart_known,
            spawn=lambda d: self.starter.spawn(d, attached=False),
            spawn_failed=self.starter.spawn_failed,
            credentials=self.starter.credentials,
            log_path=self.starter.log_path,
            now_running=self.starter.now_running,
            settle=self.starter.settle,
            stop=self.stop,
            stop_done=lambda d: self.stopper.done(d),
            stop_progress=lambda d: self.stopper.progress(d),
            kill_pid=lambda pid, sig: self.stopper.kill_pid(pid, sig),
            save_state=self.save_state,
        )
        self.stopper = Stopper(
            self.daemons,
            os=os,
            clock=clock,
            timers=self.timers,
            children=self.children,
            prober=self.prober,
            leadership=self.leadership,
            capture=self.capture,
            start=self.starter.start,
            launch_leftovers=lambda d: launches.leftovers(d, procs=os),
            forget_session=self.attached.forget_session,
            on_finished=self._finished,
        )
        self.upkeep = Upkeep(
            self.daemons,
            timers=self.timers,
            log_path=self.starter.log_path,
            watch_touch=lambda paths: self.watcher.watch_touch(paths),  # (the watcher: set up later)
            restart=self.stopper.restart,
            final=lambda: self.final,
        )
        self.watches = Watches(self.starter, self.prober, self.stopper, self.selector)  # limits, notify
        self.leader_link = LeaderLink(
            self.daemons,
            held=self.held,
            env=self.env,
            os=os,
            children=self.children,
            leadership=self.leadership,
            starter=self.starter,
            stop=self.stopper.stop,
            final=lambda: self.final,
        )
        self.declarations = Declarations(
            self.daemons,
            held=self.held,
            env=self.env,
            runtime=self.dir,
            starter=self.starter,
            stopper=self.stopper,
            smart=self.smart,
            leadership=self.leadership,
            changed=(  # after each apply, in this order: jobs, touch and log files, limits, notify
                self.starter.jobs.declarations_changed,
                self.upkeep.declarations_changed,
                self.watches.declarations_changed,
            ),
        )
        self.owner_set = Owners(
            os=os,
            selector=self.selector,
            timers=self.timers,
            apply=self.declarations.apply,
            final_stop=lambda smart_too: self.begin_final_stop(smart_too=smart_too),
            is_final=lambda: self.final,
            save_state=self.save_state,
        )
        self.state = StateFile(
            runtime_dir,
            os=os,
            owners=self.owner_set,
            held=self.held,
            attached_sessions=self.attached.sessions,
            smart_known=self.smart_known,
            final=lambda: self.final,
        )
        self.answers = ControlAnswers(
            self.daemons,
            held=self.held,
            owners=self.owner_set,
            starter=self.starter,
            stopper=self.stopper,
            leadership=self.leadership,
            prober=self.prober,
            upkeep=self.upkeep,
            cron=self.starter.jobs,
            os=os,
            clock=clock,
            save_state=self.save_state,
            about={"started_at": self.started_at, "respawns": respawns, "runtime_dir": runtime_dir},
            events=self.declarations.events,  # the event stream (docs/monitoring.md)
        )

    # ------------------------------------------------------------------ the composed parts' verbs
    @property
    def final(self) -> bool:
        """The final stop began: nothing starts any more."""
        return self.stopper.final

    def stop(self, d: Daemon, *, sig: int | None = None, then: Callable[[], None] | None = None) -> None:
        self.stopper.stop(d, sig=sig, then=then)

    def begin_final_stop(self, *, smart_too: bool = False) -> None:
        self.stopper.begin_final_stop(smart_too=smart_too)

    def save_state(self) -> None:
        """Mark the state file stale; the loop writes it once per turn (after this turn's spawns)."""
        self.state.save()

    def _finished(self) -> None:
        self.exiting = True

    def shutdown_cleanup(self) -> None:
        self.leadership.drop_all()
        self.watches.close()
        self.state.write()
        self.control.close()
        self.capture.close_all()
        self.output.flush()
        self._tell_guard("exit")
        log.info("supervisor exiting")

    # ------------------------------------------------------------------ process setup
    def acquire_lock(self) -> bool:
        return self.dir.acquire_lock()

    def setup(self) -> None:
        self.os.become_subreaper()  # not on the portable layer (docs/process-model.md)
        self.os.attach_timers(self.timers)  # the portable layer's exit polling, if any
        reset_signal_dispositions()
        self.signals.install((signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1))
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.control.listen()
        self.open_watcher()
        self.dir.write_index()
        log.info(
            "supervisor started (pid %d, runtime %s%s)",
            os.getpid(),
            self.runtime_dir,
            f", respawn {self.respawns}" if self.respawns else "",
        )

    def open_watcher(self) -> None:
        """Hear of touch files and of the runtime directory vanishing (once it is set up)."""
        self.watcher = watch.Watcher(
            self.selector,
            self.timers,
            self.runtime_dir,
            on_touched=self.upkeep.check_touch,
            on_runtime_event=self._recover_runtime_dir,
            runtime_names=("control.sock", LOCK_FILE, LOG_FILE),
            poll_every=TOUCH_EVERY,
        )

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        self.state.restore()
        self.owner_set.expect_first(NO_OWNER_GRACE, self._no_owner)
        while not self.exiting:
            if self.output.pending:
                timeout = self.timers.timeout()
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            else:
                timeout = self.timers.timeout()
            self.turn(timeout)
        self.shutdown_cleanup()
        return self.exit_code

    def turn(self, timeout: float | None) -> None:
        """One turn of the loop: wait up to ``timeout`` for a file descriptor (pidfds, signals,
        the control socket), reap, run what became ready and what is due, write the state file.
        (A replayed history drives the loop one turn at a time, with a timeout of 0.)"""
        try:
            events = self.selector.select(timeout)
        except InterruptedError:
            events = []
        self._reap()
        for key, mask in events:
            callback = key.data
            callback(mask)
        self.timers.run_due()
        if self.state.dirty:
            self.state.write()
        self.output.flush()
        if self.control.conns and self._sweep_timer is None:
            self._sweep_timer = self.timers.call_later(1.0, self._sweep)
        elif not self.control.conns and self._sweep_timer is not None:
            self._sweep_timer.cancel()  # idle: no timer unless something needs one
            self._sweep_timer = None

    def _sweep(self) -> None:
        self._sweep_timer = None
        self.dir.sweep_control(self.clock())

    def _on_signal(self, sig: int) -> None:  # (SIGCHLD and SIGHUP only wake the loop up)
        if sig in (signal.SIGTERM, signal.SIGINT):
            log.info("received %s: stopping attached daemons and exiting", signal.Signals(sig).name)
            self.begin_final_stop()
        elif sig == signal.SIGUSR1:
            self._sweep()

    def _reap(self) -> None:
        reap_children(self.os, self.children, self.exit_status)

    def _no_owner(self) -> None:
        self.exit_code = EXIT_NO_OWNER
        self.begin_final_stop()

    def _recover_runtime_dir(self) -> None:
        self.dir.recover(self.state.write)
        self.watcher.watch_runtime_dir()

    def _tell_guard(self, line: str) -> None:
        if self.guard_fd is None:
            return
        try:
            os.write(self.guard_fd, (line + "\n").encode())
        except OSError:
            self.guard_fd = None


SUPERVISOR_NAME = "ad-supervisor"  # /proc/PID/comm, so ps and top tell it from its guard


def main(runtime_dir: str, guard_fd: int | None, respawns: int) -> int:
    launch_request.keep_server_umask()
    set_process_name(SUPERVISOR_NAME)
    configure_logging(runtime_dir)
    sup = Supervisor(runtime_dir, guard_fd=guard_fd, respawns=respawns)
    if not sup.acquire_lock():
        return EXIT_LOCKED
    sup.setup()
    return sup.run()
