"""The supervisor process: one selector loop over pidfds, a signal wake-up fd, timers and the
control socket, acting on the decisions of each daemon's record.

Runs in a process forked from the guard (``python -m attachdaemon_core guard``; named
``ad-supervisor``), single-threaded. It is a child subreaper and reaps every child on SIGCHLD;
processes that are not its children (owners, adopted smart daemons) are watched by pidfd. Nothing
here polls unless a daemon needs it (a pidfile still to appear, a readiness probe, a stop in
progress). It composes the parts of ``engine/``, each given the objects and callbacks it needs:
a runner per daemon kind (``AttachedRunner``, ``SmartRunner``), the ``Stopper``, the ``Owners``,
the ``Upkeep`` of touch and log files; it asks ``engine/decide/`` (pure functions) what to do and
acts through an OS seam (``engine/os_seam.py``) that a unit test replaces. Probes, output
capture, file watching, leader locks and status reports are helpers it owns.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable
from typing import Any

from attachdaemon_core import __version__
from attachdaemon_core.control.server import CommandError, ControlServer, Peer
from attachdaemon_core.control.verbs import VERBS
from attachdaemon_core.engine import launches, report, watch
from attachdaemon_core.engine.attached import AttachedRunner
from attachdaemon_core.engine.cron import CronRunner
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.decide.reload import Do, Seen, plan_reload
from attachdaemon_core.engine.decide.start_gate import offered_starts, waiting_for
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.logs import Capture, Output, open_log_file, rotate_if_needed
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.os_seam import REAL_OS, RealOS
from attachdaemon_core.engine.owners import Owner, Owners
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.runtime_dir import LOCK_FILE, RuntimeDir
from attachdaemon_core.engine.smart import SmartRunner
from attachdaemon_core.engine.state_file import (
    LOG_FILE,
    STATE_FILE,
    atomic_json,
    configure_logging,
    empty_previous_sessions,
    read_previous,
)
from attachdaemon_core.engine.states import RUNNING_STATES, State
from attachdaemon_core.engine.stopper import Stopper
from attachdaemon_core.engine.upkeep import Upkeep
from attachdaemon_core.osproc import pidfile, proc
from attachdaemon_core.osproc.spawn import (
    PR_SET_CHILD_SUBREAPER,
    Credentials,
    SpawnError,
    SpawnRequest,
    environment_for,
    prctl,
    reset_signal_dispositions,
    resolve_credentials,
    set_process_name,
    spawn,
)
from attachdaemon_core.spec.messages import error_text, signal_name
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")
_join = os.path.join  # (``os`` is also the name of the OS seam ``Supervisor`` is given)

EXIT_OK = 0
EXIT_LOCKED = 75  # another supervisor holds this runtime directory (never 3 or 4: gunicorn < 26.1)
EXIT_NO_OWNER = 76
NO_OWNER_GRACE = 10.0  # a fresh supervisor that gets no owner in this time exits
TOUCH_EVERY = 1.0


class Supervisor:
    """The supervisor process: its loop, owners and declarations. Each daemon kind has a runner
    (``attached``, ``smart``), stopping has its ``stopper``; they are composed here, each given
    the objects and callbacks it needs."""

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
        self.daemons: dict[str, Daemon] = {}
        self.env: dict[str, str] = {}
        self.children: dict[int, Callable[[ExitStatus], None]] = {}
        self.exit_status: dict[int, ExitStatus] = {}
        self.leadership = Leadership(
            self.selector,
            self.timers,
            children=self.children,
            on_acquired=self._lead,
            on_lost=self._lost_lead,
            wanted=self._wants_leader,
        )
        self.prober = Prober(
            self.selector,
            self.timers,
            run_child=self._run_probe_child,
            kill=self._kill_pid,
            on_ready=self._became_ready,
        )
        self.held: set[str] = set()
        self.exiting = False
        self.exit_code = EXIT_OK
        self.started_at = time.time()
        self.output = Output(2)
        self.capture = Capture(self.selector, self.output)
        self.control = ControlServer(_join(runtime_dir, "control.sock"), self.selector, self.handle)
        self.dir = RuntimeDir(runtime_dir, self.control, started_at=self.started_at)
        self.wake_r = -1
        self._sweep_timer: Timer | None = None
        self._no_owner_timer: Timer | None = None
        self.watcher: watch.Watcher
        self.smart_known: dict[str, tuple[int, int]] = {}  # see SmartRunner.smart_known
        self._pending_signals: list[int] = []
        self._state_dirty = False
        self.default_user: tuple[int, int] | None = None
        self.attached = AttachedRunner(
            os=os,
            clock=clock,
            timers=self.timers,
            children=self.children,
            capture=self.capture,
            spawn=lambda d: self._spawn(d, attached=True),
            now_running=self._now_running,
            settle=self._settle,
            stop_progress=self._stop_progress,
            kill_pid=self._kill_pid,
            known_pids=lambda: [d.pid for d in self.daemons.values() if d.pid is not None],
            tell_guard=self._tell_guard,
            save_state=self.save_state,
        )
        self.cron = CronRunner(
            self.daemons,
            timers=self.timers,
            clock=clock,
            children=self.children,
            start=self.start,
            spawn_attached=self.attached.start,
            stop=self.stop,
            runnable=lambda d: not self.final and d.name not in self.held,
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
            spawn=lambda d: self._spawn(d, attached=False),
            spawn_failed=self._spawn_failed,
            credentials=self._credentials,
            log_path=self.log_path,
            now_running=self._now_running,
            settle=self._settle,
            stop=self.stop,
            stop_done=self._stop_done,
            stop_progress=self._stop_progress,
            kill_pid=self._kill_pid,
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
            start=self.start,
            launch_leftovers=launches.leftovers,
            forget_session=self.attached.forget_session,
            on_finished=self._finished,
        )
        self.owner_set = Owners(
            os=os,
            selector=self.selector,
            timers=self.timers,
            apply=self.apply,
            final_stop=lambda smart_too: self.begin_final_stop(smart_too=smart_too),
            is_final=lambda: self.final,
            save_state=self.save_state,
        )
        self.upkeep = Upkeep(
            self.daemons,
            timers=self.timers,
            log_path=self.log_path,
            watch_touch=lambda paths: self.watcher.watch_touch(paths),  # noqa: PLW0108 - set up later
            restart=self.restart,
            final=lambda: self.final,
        )

    # ------------------------------------------------------------------ the composed parts' verbs
    @property
    def final(self) -> bool:
        """The final stop began: nothing starts any more."""
        return self.stopper.final

    def stop(self, d: Daemon, *, sig: int | None = None, then: Callable[[], None] | None = None) -> None:
        self.stopper.stop(d, sig=sig, then=then)

    def restart(self, d: Daemon, *, sig: int | None = None) -> None:
        self.stopper.restart(d, sig=sig)

    def send_signal(self, d: Daemon, sig: int) -> bool:
        return self.stopper.send_signal(d, sig)

    def begin_final_stop(self, *, smart_too: bool = False) -> None:
        self.stopper.begin_final_stop(smart_too=smart_too)

    def _stop_progress(self, d: Daemon) -> None:
        self.stopper.progress(d)

    def _stop_done(self, d: Daemon) -> None:
        self.stopper.done(d)

    def _kill_pid(self, pid: int, sig: int) -> None:
        self.stopper.kill_pid(pid, sig)

    def _finished(self) -> None:
        self.exiting = True

    def shutdown_cleanup(self) -> None:
        self.leadership.drop_all()
        self.write_state()
        self.control.close()
        self.capture.close_all()
        self.output.flush()
        self._tell_guard("exit")
        log.info("supervisor exiting")

    # ------------------------------------------------------------------ process setup
    def acquire_lock(self) -> bool:
        return self.dir.acquire_lock()

    def setup(self) -> None:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        reset_signal_dispositions()
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._note_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self._on_wakeup)
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

    def _note_signal(self, signum: int, _frame: object) -> None:
        self._pending_signals.append(signum)

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        self.restore_state()
        if not self.owners:
            self._no_owner_timer = self.timers.call_later(NO_OWNER_GRACE, self._no_owner)
        while not self.exiting:
            if self.output.pending:
                timeout = self.timers.timeout()
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            else:
                timeout = self.timers.timeout()
            try:
                events = self.selector.select(timeout)
            except InterruptedError:
                events = []
            self._reap()
            for key, mask in events:
                callback = key.data
                callback(mask)
            self.timers.run_due()
            if self._state_dirty:
                self.write_state()
            self.output.flush()
            if self.control.conns and self._sweep_timer is None:
                self._sweep_timer = self.timers.call_later(1.0, self._sweep)
            elif not self.control.conns and self._sweep_timer is not None:
                self._sweep_timer.cancel()  # idle: no timer unless something needs one
                self._sweep_timer = None
        self.shutdown_cleanup()
        return self.exit_code

    def _sweep(self) -> None:
        self._sweep_timer = None
        self.control.sweep(self.clock())
        if self.control.socket_missing():
            log.warning("control socket vanished; listening again")
            with contextlib.suppress(OSError):
                os.makedirs(self.runtime_dir, mode=0o700, exist_ok=True)
                self.control.close()
                self.control.listen()

    def _on_wakeup(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 4096):
                pass
        pending, self._pending_signals = self._pending_signals, []
        for sig in pending:
            if sig in (signal.SIGTERM, signal.SIGINT):
                log.info("received %s: stopping attached daemons and exiting", signal.Signals(sig).name)
                self.begin_final_stop()
            elif sig == signal.SIGUSR1:
                self._sweep()

    def _reap(self) -> None:
        while True:
            reaped = self.os.reap_one()
            if reaped is None:
                return
            pid, status = reaped
            code = os.waitstatus_to_exitcode(status)
            exit_status = ExitStatus(code if code >= 0 else None, -code if code < 0 else None, time.time())
            callback = self.children.pop(pid, None)
            if callback is not None:
                callback(exit_status)
            else:
                self.exit_status[pid] = exit_status
                if len(self.exit_status) > 1000:
                    self.exit_status.pop(next(iter(self.exit_status)))

    # ------------------------------------------------------------------ owners
    @property
    def owners(self) -> dict[int, Owner]:
        return self.owner_set.by_pid

    def add_owner(self, ident: dict[str, Any], decl: dict[str, Any], *, reload: bool = True) -> Any:
        first = self.owner_set.add(ident, decl, reload=reload)
        if self._no_owner_timer is not None:
            self._no_owner_timer.cancel()
            self._no_owner_timer = None
        return {"pid": os.getpid(), "owners": sorted(self.owners), "first": first}

    def reload_owner(self, ident: dict[str, Any], decl: dict[str, Any], policies: bool) -> Any:
        if not self.owner_set.reload(ident, decl, policies):
            return self.add_owner(ident, decl, reload=policies)
        return {"pid": os.getpid(), "owners": sorted(self.owners)}

    def remove_owner(self, pid: int, *, why: str) -> dict[str, Any]:
        self.owner_set.remove(pid, why=why)
        return {"final": self.final}

    def _no_owner(self) -> None:
        self._no_owner_timer = None
        if not self.owners:
            log.info("no owner registered in %.0fs; exiting", NO_OWNER_GRACE)
            self.exit_code = EXIT_NO_OWNER
            self.begin_final_stop()

    # ------------------------------------------------------------------ declarations
    def apply(self, decl: dict[str, Any], *, reload: bool) -> None:
        """Make the running set match ``decl``: start added, stop removed, restart changed."""
        specs = [DaemonSpec.from_wire(s) for s in decl.get("specs", [])]
        self.env.clear()  # in place: the runners hold this dict
        self.env.update(decl.get("env") or {})
        default = decl.get("default_user")
        self.default_user = (int(default["uid"]), int(default["gid"])) if isinstance(default, dict) else None
        self.dir.allow_readers({int(u) for u in decl.get("read_only_uids") or []})
        old = {name: d.spec for name, d in self.daemons.items()}
        seen = {name: Seen(d.state, d.pid is not None) for name, d in self.daemons.items()}
        actions = plan_reload(old, specs, seen, reload=reload, held=self.held)
        for action in actions:
            if action.do == Do.FORGET:
                self._forget(self.daemons[action.name])
        for spec in specs:  # every known daemon takes its new spec before any action runs
            if spec.name in self.daemons:
                self.daemons[spec.name].spec = spec
        new = {s.name: s for s in specs}
        for action in actions:
            if action.do != Do.FORGET:
                self._carry_out(action.do, action.name, new[action.name])
        self.cron.declarations_changed()
        self.upkeep.declarations_changed()
        self._start_waiting()

    def _carry_out(self, do: str, name: str, spec: DaemonSpec) -> None:
        if do == Do.ADD:
            self.daemons[name] = Daemon(spec)
            return
        d = self.daemons[name]
        if do == Do.START:
            self.start(d)
        elif do == Do.RELEAD:
            log.info("daemon %r: its leader lock changed; following the new one", name)
            self.stop(d, then=functools.partial(self._relead, d))
        elif do == Do.RESTART:
            log.info("daemon %r changed; restarting it", name)
            self.restart(d)
        elif do == Do.RELOAD_RESTART:
            log.info("daemon %r restarted for the server reload (on_reload: restart)", name)
            self.restart(d, sig=spec.reload_stop_signal)
        elif do == Do.RELOAD_SIGNAL:
            log.info("daemon %r sent %s for the server reload", name, signal_name(spec.reload_signal))
            self.send_signal(d, spec.reload_signal)

    def _forget(self, d: Daemon) -> None:
        del self.daemons[d.name]
        if d.spec.leader is not None:  # stopped whatever its kind, then the lock released
            log.info("leader daemon %r was removed from the declarations; stopping it", d.name)
            self.daemons[d.name] = d
            self.stop(d, then=functools.partial(self._forget_leader, d))
        elif d.spec.kind == "attached":
            log.info("daemon %r was removed from the declarations; stopping it", d.name)
            self.daemons[d.name] = d
            self.stop(d, then=lambda: self._drop_daemon(d))
        else:
            if d.pid is not None:
                log.info(
                    "smart daemon %r was removed from the declarations; pid %d left running, unsupervised",
                    d.name,
                    d.pid,
                )
            self.smart.unwatch(d)
            launches.unlock_pidfile(d)

    # ------------------------------------------------------------------ leader daemons
    def _wants_leader(self, name: str) -> bool:
        d = self.daemons.get(name)
        return d is not None and d.spec.leader is not None and not self.final and name not in self.held

    def _lead(self, name: str) -> None:
        """Our holder acquired the lock: start the daemon."""
        d = self.daemons.get(name)
        if d is None or not self._wants_leader(name):
            return
        if d.state == State.STANDBY:
            d.set_state(State.STARTING, "leader lock acquired")
            d.quick_deaths = 0
            self._leader_hook(d, "on_lead")
            self.start(d)

    def _lost_lead(self, name: str, reason: str) -> None:
        """This host gave up or may have lost the lock: stop the daemon, whatever its kind."""
        d = self.daemons.get(name)
        if d is None:
            return
        d.error = f"lost the leader lock: {reason}"
        self.stop(d, then=functools.partial(self._after_lost_lead, d))

    def _forget_leader(self, d: Daemon) -> None:
        self.leadership.drop(d.name, release=True)
        self._drop_daemon(d)

    def _leader_hook(self, d: Daemon, which: str) -> None:
        """Run a lord/unlord hook (uWSGI's Legion hooks): fire and forget, its end logged."""
        leader = d.spec.leader
        argv = getattr(leader, which, ()) if leader is not None else ()
        if not argv or leader is None:
            return
        try:
            # As the daemon's user, like the daemon: a hook is the declaration's code, not ours.
            creds = self._credentials(d.spec)
            env = environment_for(self.env, d.spec, creds)
            env["ATTACHDAEMON_LEADER_LOCK"] = leader.lock
            token = self.leadership.token(d.name)
            if token is not None:
                env["ATTACHDAEMON_LEADER_TOKEN"] = str(token)
            umask = d.spec.umask if d.spec.umask is not None else DAEMON_UMASK
            pid = spawn(SpawnRequest(argv=argv, env=env, cwd=d.spec.cwd, credentials=creds, umask=umask))
        except (KeyError, SpawnError) as exc:
            log.error("daemon %r: its %s hook could not start: %s", d.name, which, exc)
            return

        def done(status: ExitStatus) -> None:
            level = logging.INFO if status.success else logging.WARNING
            log.log(level, "daemon %r: %s hook (pid %d) %s", d.name, which, pid, status.describe())

        self.children[pid] = done

    def _relead(self, d: Daemon) -> None:
        self.leadership.drop(d.name, release=True)
        if d.spec.autostart and d.name not in self.held:
            self.start(d)

    def _after_lost_lead(self, d: Daemon) -> None:
        self._leader_hook(d, "on_unlead")  # only once the daemon is reaped
        self._standby(d)

    def _standby(self, d: Daemon) -> None:
        if d.state in (State.STOPPED, State.BACKOFF) and self._wants_leader(d.name):
            d.set_state(State.STANDBY, "following")
            self.leadership.ensure(d)

    def _drop_daemon(self, d: Daemon) -> None:
        if self.daemons.get(d.name) is d:
            del self.daemons[d.name]

    # ------------------------------------------------------------------ starting
    def start(self, d: Daemon) -> None:
        if self.final:
            return
        d.runtime.cancel_timer()
        if d.state in RUNNING_STATES and d.pid is not None:
            return
        if d.spec.leader is not None and not self.leadership.is_leading(d.name):
            self.leadership.ensure(d)
            if d.state != State.STANDBY:
                d.set_state(State.STANDBY, "waiting for the leader lock")
            return
        waiting = waiting_for(d.spec.depends_on, self.daemons)
        if waiting:
            d.error = f"waiting for {', '.join(waiting)} to be ready"
            if d.state != State.STARTING:
                d.set_state(State.STARTING, d.error)
            return
        if d.spec.schedule is not None:
            self.cron.activate_or_run(d)  # a job: wait for its next run, or run now
        elif d.spec.kind == "attached":
            self.attached.start(d)
        elif launches.lock_pidfile(d):
            self.smart.start(d)

    def _start_waiting(self) -> None:
        for d in offered_starts(list(self.daemons.values()), held=self.held):
            self.start(d)  # (which may start others: each is checked when reached)

    def _request(self, d: Daemon, *, attached: bool) -> tuple[SpawnRequest, list[int]]:
        spec = d.spec
        creds = self._credentials(spec)
        env = environment_for(self.env, spec, creds)
        token = self.leadership.token(d.name)
        if token is not None:
            env["ATTACHDAEMON_LEADER_TOKEN"] = str(token)  # the fencing token (docs/events.md)
        if spec.pidfile is not None:  # tells this daemon's processes, whatever they run, from others
            env[pidfile.MARKER_VAR] = os.path.realpath(spec.pidfile)
        to_close: list[int] = []
        out: int | None = None
        if spec.log == "prefix":
            env.setdefault("PYTHONUNBUFFERED", "1")
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(r, False)
            self.capture.open(d, r)
            out = w
            to_close.append(w)
        elif spec.log != "raw":
            path = self.log_path(spec)
            rotate_if_needed(path, spec.log_max_bytes, spec.log_backups)
            owner = (creds.uid, creds.gid) if creds is not None else None
            out = open_log_file(path, private=spec.log == "runtime", owner=owner)
            to_close.append(out)
        req = SpawnRequest(
            argv=spec.command,
            env=env,
            cwd=spec.cwd,
            credentials=creds,
            umask=spec.umask if spec.umask is not None else DAEMON_UMASK,
            stdin_fd=0 if spec.stdin else None,
            stdout_fd=out,
            stderr_fd=out,
            parent_death_signal=signal.SIGKILL if attached else None,
        )
        return req, to_close

    def _credentials(self, spec: DaemonSpec) -> Credentials | None:
        """Who the daemon runs as: its user/group, else the gunicorn user (docs/declarations.md), else us."""
        user, group = spec.user, spec.group
        if user is None and group is None and self.default_user is not None:
            user, group = map(str, self.default_user)
        return resolve_credentials(None if user == "root" else user, group)

    def log_path(self, spec: DaemonSpec) -> str:
        if spec.log == "runtime":
            return os.path.join(self.runtime_dir, "logs", f"{spec.name}.log")
        return spec.log

    def _spawn(self, d: Daemon, *, attached: bool) -> int | None:
        """Spawn ``d``'s command; on failure record why and schedule the retry."""
        try:
            req, to_close = self._request(d, attached=attached)
        except (KeyError, OSError, SpawnError) as exc:
            self._spawn_failed(d, error_text(exc))
            return None
        try:
            pid = self.os.spawn(req)
        except SpawnError as exc:
            self.capture.close(d.name)
            self._spawn_failed(d, str(exc))
            return None
        finally:
            for fd in to_close:
                os.close(fd)
        return pid

    def _spawn_failed(self, d: Daemon, reason: str) -> None:
        decision = d.decide_after_spawn_failure(reason, self.clock())
        d.error = reason
        self._settle(d, decision.state, decision.delay, f"could not start: {reason}")

    def _now_running(self, d: Daemon) -> None:
        if d.state != State.RUNNING:
            d.set_state(State.RUNNING)
        if d.spec.leader is not None and d.pid is not None:
            st = self.os.stat(d.pid)
            if st is not None:  # the holder owns this session's deadline from now on
                self.leadership.session(d, st.sid, st.starttime)
        if d.spec.ready is None:
            self._became_ready(d)
        else:
            d.ready = False
            self.prober.start(d)

    def _became_ready(self, d: Daemon) -> None:
        d.ready = True
        self._start_waiting()

    def _settle(self, d: Daemon, state: State, delay: float, what: str) -> None:
        """After a run ended: restart (now or after ``delay``) or rest in ``state``."""
        d.runtime.cancel_timer()
        self.leadership.stopped(d.name)
        if d.spec.schedule is not None:  # a job's run ended: record it, wait for the next
            self.cron.run_ended(d, what)
            return
        if state == State.STARTING:
            log.info("daemon %r %s; restarting", d.name, what)
            if d.state != State.STARTING:
                d.set_state(State.STARTING)
            self.start(d)
        elif state == State.BACKOFF:
            log.info("daemon %r %s; restarting in %.1fs", d.name, what, delay)
            d.set_state(State.BACKOFF)
            d.runtime.timer = self.timers.call_later(delay, lambda: self._backoff_over(d))
        else:
            if d.state != state:
                d.set_state(state)
            if state == State.FATAL and d.spec.control:
                log.error("control daemon %r %s; shutting the server down", d.name, what)
                d.error = f"control daemon {what}; the server was asked to shut down"
                self._shutdown_owners()
            elif state == State.FATAL:
                log.error("daemon %r %s; giving up (fatal)", d.name, what)
            else:
                log.info("daemon %r %s; not restarting (%s)", d.name, what, state.value)

    def _backoff_over(self, d: Daemon) -> None:
        if d.state == State.BACKOFF:
            d.set_state(State.STARTING)
            self.start(d)

    def _shutdown_owners(self) -> None:
        for owner in list(self.owners.values()):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(owner.pidfd, signal.SIGTERM)

    # ------------------------------------------------------------------ readiness
    def _run_probe_child(
        self, argv: tuple[str, ...], spec: DaemonSpec, done: Callable[[ExitStatus], None], *, as_daemon: bool
    ) -> int:
        """A probe child: a command probe runs as the daemon's user with its environment (it is the
        declaration's code); the http probe is our own fixed code and runs as the supervisor."""
        creds = self._credentials(spec) if as_daemon else None
        env = environment_for(self.env, spec, creds) if as_daemon else dict(self.env)
        umask = (spec.umask if spec.umask is not None else DAEMON_UMASK) if as_daemon else None
        pid = spawn(SpawnRequest(argv=argv, env=env, cwd=spec.cwd, credentials=creds, umask=umask))
        self.children[pid] = done
        return pid

    def _recover_runtime_dir(self) -> None:
        self.dir.recover(self.write_state)
        self.watcher.watch_runtime_dir()

    # ------------------------------------------------------------------ guard and state
    def _tell_guard(self, line: str) -> None:
        if self.guard_fd is None:
            return
        try:
            os.write(self.guard_fd, (line + "\n").encode())
        except OSError:
            self.guard_fd = None

    def save_state(self) -> None:
        """Mark the state file stale; the loop writes it once per turn (after this turn's spawns)."""
        self._state_dirty = True

    def write_state(self) -> None:
        self._state_dirty = False
        state = {
            "boot_id": proc.boot_id(),
            "owners": self.owner_set.records(),
            "held": sorted(self.held),
            "attached_sessions": [[sid, st] for sid, st in self.attached.sessions.items()],
            "smart": [[path, pid, st] for path, (pid, st) in self.smart_known.items()],
            "final": self.final,
        }
        with contextlib.suppress(OSError):
            atomic_json(_join(self.runtime_dir, STATE_FILE), state)

    def restore_state(self) -> None:
        """After a crash: empty recorded attached sessions, take back live owners and their daemons."""
        state = read_previous(self.runtime_dir)
        if state is None:
            return
        empty_previous_sessions(state, self.os)
        self.held = set(state.get("held", []))
        with contextlib.suppress(TypeError, ValueError):  # smart daemons our launches produced
            known = {str(p): (int(pid), int(st)) for p, pid, st in state.get("smart", [])}
            self.smart_known.clear()  # in place: the smart runner holds this dict
            self.smart_known.update(known)
        if state.get("final"):
            return
        self.owner_set.take_back(state.get("owners", []))
        self.save_state()

    # ------------------------------------------------------------------ control verbs
    def handle(self, verb: str, args: dict[str, Any], peer: Peer) -> Any:
        """Answer a control verb through the method the registry names (``verb_<name>``,
        :mod:`attachdaemon_core.control.verbs`); the protocol has checked its arguments."""
        answer: Callable[[dict[str, Any]], Any] | None = getattr(self, VERBS[verb].method, None)
        if answer is None:
            raise CommandError(f"verb {verb!r} is not answered by the supervisor")
        return answer(args)

    def verb_ping(self, _args: dict[str, Any]) -> Any:
        return {"pid": os.getpid()}

    def verb_status(self, _args: dict[str, Any]) -> Any:
        return self.status()

    def verb_add_owner(self, args: dict[str, Any]) -> Any:
        return self.add_owner(_ident(args), _decl(args))

    def verb_reload(self, args: dict[str, Any]) -> Any:
        return self.reload_owner(_ident(args), _decl(args), bool(args.get("policies", True)))

    def verb_remove_owner(self, args: dict[str, Any]) -> Any:
        return self.remove_owner(int(_ident(args)["pid"]), why="released ownership")

    def verb_shutdown(self, _args: dict[str, Any]) -> Any:
        self.begin_final_stop()
        return {"final": True}

    def verb_logs(self, args: dict[str, Any]) -> Any:
        return self.logs(str(args.get("name")), int(args.get("lines", 50)), args.get("since"))

    def verb_start(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.discard(d.name)
            if d.spec.schedule is not None:  # a job: run it now (docs/events.md, "Jobs")
                self.cron.run(d, "started by command")
                continue
            if d.state not in RUNNING_STATES or (d.pid is None and d.launcher_pid is None):
                d.quick_deaths = 0
                if d.state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
                    d.set_state(State.STARTING, "started by command")
                self.start(d)
        return self._commanded(names)

    def verb_stop(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.add(d.name)
            self.stop(d, then=functools.partial(self.leadership.drop, d.name, release=True))
        return self._commanded(names)

    def verb_restart(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.discard(d.name)
            self.restart(d)
        return self._commanded(names)

    def verb_signal(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        sig = int(args.get("signal", 0))
        for d in names:
            if not self.send_signal(d, sig):
                raise CommandError(f"daemon {d.name!r} is not running")
        return self._commanded(names)

    def _commanded(self, names: list[Daemon]) -> dict[str, Any]:
        self.save_state()
        return {"daemons": [d.name for d in names]}

    def _names(self, args: dict[str, Any]) -> list[Daemon]:
        if args.get("all"):
            return list(self.daemons.values())
        names = args.get("names") or []
        if not isinstance(names, list) or not names:
            raise CommandError("name at least one daemon, or --all")
        unknown = [n for n in names if n not in self.daemons]
        if unknown:
            raise CommandError(
                f"no daemon named {', '.join(map(repr, unknown))} "
                f"(declared: {', '.join(self.daemons) or 'none'})"
            )
        return [self.daemons[n] for n in names]

    def logs(self, name: str, lines: int, since: Any) -> dict[str, Any]:
        d = self.daemons.get(name)
        if d is None:
            raise CommandError(f"no daemon named {name!r}")
        path = self.log_path(d.spec) if d.spec.log not in ("prefix", "raw") else None
        return report.log_lines(d, path, lines, since)

    def status(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": os.getpid(),
                "owners": sorted(self.owners),
                "started_at": self.started_at,
                "respawns": self.respawns,
                "version": __version__,
                "runtime_dir": self.runtime_dir,
            },
            "daemons": [
                report.daemon_status(
                    d,
                    now=self.clock(),
                    held=d.name in self.held,
                    error=self._error(d),
                    leader=self.leadership.status(d.name),
                    job=self.cron.status(d),
                )
                for d in self.daemons.values()
            ],
        }

    def _error(self, d: Daemon) -> str | None:
        error = d.error or self.upkeep.log_space_problem(d) or self.leadership.error(d.name)
        probe_failure = self.prober.last_failure(d.name)
        if error is None and probe_failure:
            error = f"not ready yet: {probe_failure}"
        return error


# ---------------------------------------------------------------------- helpers
def _ident(args: dict[str, Any]) -> dict[str, Any]:
    owner = args.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        raise CommandError('\'owner\' must be {"pid": int, "starttime": int}')
    return owner


def _decl(args: dict[str, Any]) -> dict[str, Any]:
    decl = args.get("declarations")
    if not isinstance(decl, dict) or not isinstance(decl.get("specs"), list):
        raise CommandError('\'declarations\' must be {"specs": [...], "env": {...}}')
    try:
        for s in decl["specs"]:
            DaemonSpec.from_wire(s)
    except (TypeError, ValueError, KeyError) as exc:
        raise CommandError(f"bad declarations: {exc}") from None
    return decl


SUPERVISOR_NAME = "ad-supervisor"  # /proc/PID/comm, so ps and top tell it from its guard


# The umask the server gave us: daemons without a declared ``umask`` still get it, while what the
# supervisor itself creates is private (umask 077, and explicit modes).
DAEMON_UMASK: int | None = None


def main(runtime_dir: str, guard_fd: int | None, respawns: int) -> int:
    global DAEMON_UMASK
    DAEMON_UMASK = os.umask(0o077)
    set_process_name(SUPERVISOR_NAME)
    configure_logging(runtime_dir)
    sup = Supervisor(runtime_dir, guard_fd=guard_fd, respawns=respawns)
    if not sup.acquire_lock():
        return EXIT_LOCKED
    sup.setup()
    return sup.run()
