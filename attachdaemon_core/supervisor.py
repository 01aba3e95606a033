"""The supervisor process: one selector loop over pidfds, a signal wake-up fd, timers and the
control socket, acting on the decisions of each daemon's record.

Runs in a process forked from the guard (``python -m attachdaemon_core guard``; named
``ad-supervisor``), single-threaded. It is a child subreaper and reaps every child on SIGCHLD;
processes that are not its children (owners, adopted smart daemons) are watched by pidfd. Nothing
here polls unless a daemon needs it (a pidfile still to appear, a readiness probe, a stop in
progress). Smart daemons and stopping are parts of their own (``smart``, ``stopping``); probes,
output capture, file watching, leader locks and status reports are helpers it owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import __version__, pidfile, proc, report, watch
from .control.server import CommandError, ControlServer, Peer
from .control.verbs import VERBS
from .daemon import Daemon, ExitStatus
from .leadership import Leadership
from .logs import Capture, Output, open_log_file, private_file, rotate_if_needed
from .loop import Timer, Timers
from .messages import error_text, signal_name
from .paths import RuntimeDirError, open_for_traversal, private_subdir, short_digest, user_root
from .readiness import Prober
from .smart import SmartDaemons
from .spawn import (
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
from .spec import DaemonSpec
from .states import RUNNING_STATES, State
from .stopping import Stop, Stopping

log = logging.getLogger("attachdaemon")

EXIT_OK = 0
EXIT_LOCKED = 75  # another supervisor holds this runtime directory (never 3 or 4: gunicorn < 26.1)
EXIT_NO_OWNER = 76
STATE_FILE = "state.json"
LOG_FILE = "supervisor.log"
LOCK_FILE = "lock"
NO_OWNER_GRACE = 10.0  # a fresh supervisor that gets no owner in this time exits
ROTATE_EVERY = 30.0
TOUCH_EVERY = 1.0
LOW_DISK_BYTES = 64 * 1024


@dataclass
class Owner:
    pid: int
    starttime: int
    pidfd: int
    seq: int
    decl: dict[str, Any]
    pid1: bool = False  # the owner is PID 1 of its pid namespace (a container's init)


class Supervisor(SmartDaemons, Stopping):
    """The supervisor process: its loop, owners, declarations and attached daemons (smart
    daemons and stopping live in their own parts)."""

    def __init__(
        self,
        runtime_dir: str,
        *,
        guard_fd: int | None = None,
        respawns: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.guard_fd = guard_fd
        self.respawns = respawns
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.timers = Timers(clock)
        self.daemons: dict[str, Daemon] = {}
        self.env: dict[str, str] = {}
        self.owners: dict[int, Owner] = {}
        self.owner_seq = 0
        self.children: dict[int, Callable[[ExitStatus], None]] = {}
        self.exit_status: dict[int, ExitStatus] = {}
        self.pidfds: dict[str, int] = {}  # daemon name -> pidfd of its watched pid
        self.stops: dict[str, Stop] = {}
        self.timers_by_daemon: dict[str, Timer] = {}
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
        self.attached_sessions: dict[int, int] = {}  # sid -> starttime
        self.final = False
        self.exiting = False
        self.exit_code = EXIT_OK
        self.started_at = time.time()
        self.output = Output(2)
        self.capture = Capture(self.selector, self.output)
        self.control = ControlServer(os.path.join(runtime_dir, "control.sock"), self.selector, self.handle)
        self.lock_fd = -1
        self.wake_r = -1
        self._touch_mtimes: dict[str, dict[str, float | None]] = {}
        self._rotate_timer: Timer | None = None
        self._sweep_timer: Timer | None = None
        self._no_owner_timer: Timer | None = None
        self._wave: set[str] = set()
        self.watcher: watch.Watcher
        self.pid_locks: dict[str, int] = {}
        # realpath of a smart pidfile -> (pid, /proc start time) of the daemon our launch produced
        # (kept in the state file, 0600 in our 0700 runtime directory, so the next supervisor
        # knows it whatever uid it switched to: docs/process-model.md, "How a pidfile is trusted").
        self.smart_known: dict[str, tuple[int, int]] = {}
        self._pending_signals: list[int] = []
        self._state_dirty = False
        self.default_user: tuple[int, int] | None = None

    # ------------------------------------------------------------------ process setup
    def acquire_lock(self) -> bool:
        path = os.path.join(self.runtime_dir, LOCK_FILE)
        self.lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = -1
            return False
        return True

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
        self.watcher = watch.Watcher(
            self.selector,
            self.timers,
            self.runtime_dir,
            on_touched=self._check_touch,
            on_runtime_event=self._recover_runtime_dir,
            runtime_names=("control.sock", LOCK_FILE, LOG_FILE),
            poll_every=TOUCH_EVERY,
        )
        self._write_index()
        log.info(
            "supervisor started (pid %d, runtime %s%s)",
            os.getpid(),
            self.runtime_dir,
            f", respawn {self.respawns}" if self.respawns else "",
        )

    def _note_signal(self, signum: int, _frame: object) -> None:
        self._pending_signals.append(signum)

    def _write_index(self) -> None:
        info = {
            "pid": os.getpid(),
            "runtime_dir": self.runtime_dir,
            "started_at": self.started_at,
            "version": __version__,
        }
        with contextlib.suppress(OSError, RuntimeDirError):
            _atomic_json(os.path.join(self.runtime_dir, "supervisor.json"), info)
            index = private_subdir("index")
            key = short_digest(self.runtime_dir)
            _atomic_json(os.path.join(index, f"{key}.json"), info)

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
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
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
    def add_owner(self, ident: dict[str, Any], decl: dict[str, Any], *, reload: bool = True) -> Any:
        pid = int(ident["pid"])
        if self.final:
            raise CommandError("the supervisor is shutting down; try again once it has exited")
        st = proc.stat(pid)
        if st is None or st.state in ("Z", "X"):
            raise CommandError(f"owner {pid} is not running")
        if self._no_owner_timer is not None:
            self._no_owner_timer.cancel()
            self._no_owner_timer = None
        first = not self.owners
        existing = self.owners.get(pid)
        if existing is not None:
            existing.decl = decl
            self.owner_seq += 1
            existing.seq = self.owner_seq
        else:
            pidfd = proc.pidfd_open(pid)
            if pidfd is None:
                raise CommandError(f"cannot watch owner {pid}")
            self.owner_seq += 1
            pid1 = bool(ident.get("pid1"))
            self.owners[pid] = Owner(pid, st.starttime, pidfd, self.owner_seq, decl, pid1)
            self.selector.register(pidfd, selectors.EVENT_READ, lambda _m, p=pid: self._owner_gone(p))
            log.info("owner %d joined (%d owner%s)", pid, len(self.owners), "s"[: len(self.owners) > 1])
        # Applied right after this answer is sent (same loop turn, before any later request), so
        # the host's on_starting is not held while daemons are spawned.
        self.timers.call_later(0.0, functools.partial(self.apply, decl, reload=reload and not first))
        self.save_state()
        return {"pid": os.getpid(), "owners": sorted(self.owners), "first": first}

    def reload_owner(self, ident: dict[str, Any], decl: dict[str, Any], policies: bool) -> Any:
        pid = int(ident["pid"])
        owner = self.owners.get(pid)
        if owner is None:
            return self.add_owner(ident, decl, reload=policies)
        owner.decl = decl
        if owner.seq == max(o.seq for o in self.owners.values()):
            if policies:
                log.info("reload from owner %d", pid)
            else:
                log.info(
                    "declarations refreshed by owner %d (not a reload: no on_reload policy applied)", pid
                )
            self.apply(decl, reload=policies)
        self.save_state()
        return {"pid": os.getpid(), "owners": sorted(self.owners)}

    def _owner_gone(self, pid: int) -> None:
        self.remove_owner(pid, why="exited")

    def remove_owner(self, pid: int, *, why: str) -> dict[str, Any]:
        owner = self.owners.pop(pid, None)
        if owner is None:
            return {"final": self.final}
        self.selector.unregister(owner.pidfd)
        os.close(owner.pidfd)
        newest = not self.owners or owner.seq > max(o.seq for o in self.owners.values())
        log.info("owner %d %s (%d left)", pid, why, len(self.owners))
        if not self.owners:
            self.begin_final_stop(smart_too=owner.pid1)
        elif newest:
            previous = max(self.owners.values(), key=lambda o: o.seq)
            log.info("re-applying the declarations of owner %d", previous.pid)
            self.apply(previous.decl, reload=True)
        self.save_state()
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
        self.env = dict(decl.get("env") or {})
        default = decl.get("default_user")
        self.default_user = (int(default["uid"]), int(default["gid"])) if isinstance(default, dict) else None
        self._allow_readers({int(u) for u in decl.get("read_only_uids") or []})
        wanted = {s.name: s for s in specs}
        for name in list(self.daemons):
            if name not in wanted:
                self._forget(self.daemons[name])
        for spec in specs:
            d = self.daemons.get(spec.name)
            if d is None:
                d = Daemon(spec)
                self.daemons[spec.name] = d
                if spec.autostart and spec.name not in self.held:
                    self.start(d)
                continue
            old = d.spec
            d.spec = spec
            if old.leader != spec.leader:
                log.info("daemon %r: its leader lock changed; following the new one", spec.name)
                self.stop(d, then=functools.partial(self._relead, d))
            elif old.identity() != spec.identity():
                log.info("daemon %r changed; restarting it", spec.name)
                self.restart(d)
            elif reload:
                self._apply_reload_policy(d)
            elif d.state == State.STOPPED and spec.autostart and spec.name not in self.held:
                self.start(d)
        self._update_touch_timer()
        self._update_rotate_timer()
        self._start_waiting()

    def _apply_reload_policy(self, d: Daemon) -> None:
        if d.state not in (State.RUNNING, State.STARTING) or d.pid is None:
            if d.state in (State.STOPPED, State.EXITED) and d.spec.autostart and d.name not in self.held:
                self.start(d)
            return
        policy = d.spec.on_reload
        if policy == "restart":
            log.info("daemon %r restarted for the server reload (on_reload: restart)", d.name)
            self.restart(d, sig=d.spec.reload_stop_signal)
        elif policy == "signal":
            log.info("daemon %r sent %s for the server reload", d.name, signal_name(d.spec.reload_signal))
            self.send_signal(d, d.spec.reload_signal)

    def _allow_readers(self, uids: set[int]) -> None:
        """Let these uids read status and logs (gunicorn workers running as the app's user)."""
        new = uids - self.control.read_only_uids - {os.geteuid()}
        if not new:
            return
        self.control.read_only_uids |= new
        self._open_for_readers()
        log.info("uid(s) %s may read status and logs", ", ".join(map(str, sorted(new))))

    def _open_for_readers(self) -> None:
        if not self.control.read_only_uids:
            return
        with contextlib.suppress(OSError):
            open_for_traversal(user_root())
            open_for_traversal(self.runtime_dir)
            os.chmod(self.control.path, 0o666)  # noqa: S103 - who may talk is decided by SO_PEERCRED

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
            self._unwatch(d)
            self._unlock_pidfile(d)

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
        self._cancel_daemon_timer(d)
        if d.state in RUNNING_STATES and d.pid is not None:
            return
        if d.spec.leader is not None and not self.leadership.is_leading(d.name):
            self.leadership.ensure(d)
            if d.state != State.STANDBY:
                d.set_state(State.STANDBY, "waiting for the leader lock")
            return
        waiting = [n for n in d.spec.depends_on if not self._is_ready(n)]
        if waiting:
            d.error = f"waiting for {', '.join(waiting)} to be ready"
            if d.state != State.STARTING:
                d.set_state(State.STARTING, d.error)
            return
        if d.spec.kind == "attached":
            self._spawn_attached(d)
        elif self._lock_pidfile(d):
            self._start_smart(d)

    def _is_ready(self, name: str) -> bool:
        dep = self.daemons.get(name)
        return dep is not None and dep.state == State.RUNNING and dep.ready is True

    def _start_waiting(self) -> None:
        for d in list(self.daemons.values()):
            idle = d.state == State.STARTING and d.pid is None and d.launcher_pid is None
            if idle and d.name not in self.held and d.name not in self.stops:
                self.start(d)

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
            pid = spawn(req)
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

    def _spawn_attached(self, d: Daemon) -> None:
        pid = self._spawn(d, attached=True)
        if pid is None:
            return
        d.mark_started(pid, self.clock(), time.time())
        self.children[pid] = functools.partial(self._attached_exited, d, pid)
        st = proc.stat(pid)
        # Its start time identifies the session for the guard; gone already: about now (ticks).
        self.attached_sessions[pid] = st.starttime if st else int((proc.boot_seconds() - 1) * proc.CLK_TCK)
        self._tell_guard(f"+ {pid} {self.attached_sessions[pid]}")
        log.info("daemon %r started (pid %d)", d.name, pid)
        self._now_running(d)
        self.save_state()

    def _now_running(self, d: Daemon) -> None:
        if d.state != State.RUNNING:
            d.set_state(State.RUNNING)
        if d.spec.leader is not None and d.pid is not None:
            st = proc.stat(d.pid)
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

    # ------------------------------------------------------------------ attached exits
    def _attached_exited(self, d: Daemon, pid: int, status: ExitStatus) -> None:
        self.capture.read_now(d.name)
        if d.pid != pid:
            self._forget_session(pid)
            return
        if d.name in self.stops:
            self._stop_progress(d)
            return
        started_ticks = self.attached_sessions.get(pid, 0)  # its /proc start time, in ticks
        # Anything its session still holds is an orphan in the making. Its own process group
        # (one syscall to test) is ended now, before the restart; other groups of the session,
        # rare, are swept right after the restart, the session still recorded for the guard.
        if proc.group_exists(pid):
            self._sweep_session(d.name, pid)
        else:
            self.timers.call_later(0.0, functools.partial(self._sweep_session, d.name, pid))
        decision = d.decide_after_exit(status, self.clock(), stopping=False)
        escaped = self._escaped_orphans(started_ticks, pid) if status.success else []
        if escaped:
            self._daemonized_while_attached(d, escaped)
            return
        self._settle(d, decision.state, decision.delay, f"(pid {pid}) {status.describe()}")

    def _sweep_session(self, name: str, sid: int) -> None:
        leftover = proc.kill_session(sid)
        if leftover:
            log.info("daemon %r left %d process(es) in its session; killed", name, leftover)
        self._forget_session(sid)

    def _escaped_orphans(self, since_ticks: int, sid: int) -> list[proc.Stat]:
        """Processes handed to us (as subreaper) that started no earlier than the daemon did
        (``since_ticks``: both start times in /proc clock ticks, one clock), are nobody's, and
        left session ``sid`` (those still in it were just killed with it)."""
        known = set(self.children) | {d.pid for d in self.daemons.values() if d.pid is not None}
        me = os.getpid()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in known:
                continue
            st = proc.stat(int(name))
            if st is None or st.sid == sid or st.state == "Z":
                continue
            if st.ppid == me and st.starttime >= since_ticks:
                found.append(st)
        return found

    def _daemonized_while_attached(self, d: Daemon, escaped: list[proc.Stat]) -> None:
        """An attached daemon exited 0 leaving a background copy: it daemonizes itself. Restarting
        it would start a second copy each time, so end the copy and stop here, saying why."""
        names = ", ".join(f"pid {st.pid} ({st.comm})" for st in escaped)
        d.error = (
            f"exited at once leaving {names} running in the background: the command daemonizes "
            "itself. Keep it in the foreground (e.g. redis-server --daemonize no), or declare its "
            "pidfile to make it a smart daemon"
        )
        log.error("daemon %r %s; that copy was stopped and the daemon is not restarted", d.name, d.error)
        for st in escaped:
            self._kill_pid(st.pid, d.spec.stop_signal)
            self.timers.call_later(
                d.spec.stop_timeout, functools.partial(self._kill_pid, st.pid, signal.SIGKILL)
            )
        if d.state != State.FATAL:
            d.set_state(State.FATAL, d.error)

    def _forget_session(self, sid: int) -> None:
        if self.attached_sessions.pop(sid, None) is not None:
            self._tell_guard(f"- {sid}")
            self.save_state()

    def _settle(self, d: Daemon, state: State, delay: float, what: str) -> None:
        """After a run ended: restart (now or after ``delay``) or rest in ``state``."""
        self._cancel_daemon_timer(d)
        self.leadership.stopped(d.name)
        if state == State.STARTING:
            log.info("daemon %r %s; restarting", d.name, what)
            if d.state != State.STARTING:
                d.set_state(State.STARTING)
            self.start(d)
        elif state == State.BACKOFF:
            log.info("daemon %r %s; restarting in %.1fs", d.name, what, delay)
            d.set_state(State.BACKOFF)
            self._set_daemon_timer(d, delay, lambda: self._backoff_over(d))
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

    # ------------------------------------------------------------------ touch and rotation
    def _update_touch_timer(self) -> None:
        """Record touch files' mtimes and have the watcher report their changes."""
        for d in self.daemons.values():
            seen = self._touch_mtimes.setdefault(d.name, {})
            for path in d.spec.touch:
                seen.setdefault(path, _mtime(path))
        self.watcher.watch_touch({p for d in self.daemons.values() for p in d.spec.touch})

    def _check_touch(self) -> None:
        for d in list(self.daemons.values()):
            seen = self._touch_mtimes.setdefault(d.name, {})
            changed = []
            for path in d.spec.touch:
                now = _mtime(path)
                if path in seen and seen[path] != now:
                    changed.append(path)
                seen[path] = now
            if changed and d.state in (State.RUNNING, State.STARTING) and not self.final:
                log.info("daemon %r: %s changed; restarting it", d.name, changed[0])
                self.restart(d)

    def _recover_runtime_dir(self) -> None:
        """logind (or a cleaner) removed our runtime directory: recreate it, its lock and socket."""
        # Its log too: a removal in progress (logind's, rm -r) may take the log after a first recovery
        # reopened it, which would leave the supervisor logging into a deleted file.
        names = (LOCK_FILE, LOG_FILE)
        if os.path.exists(self.control.path) and all(
            os.path.exists(os.path.join(self.runtime_dir, n)) for n in names
        ):
            return
        try:
            os.makedirs(self.runtime_dir, mode=0o700, exist_ok=True)
            reopen_log_files()
            log.warning("runtime directory %s or its files vanished; recreating them", self.runtime_dir)
            old_lock = self.lock_fd
            if not self.acquire_lock():
                self.lock_fd = old_lock
                log.error("another supervisor took %s meanwhile", self.runtime_dir)
            elif old_lock >= 0:
                os.close(old_lock)
            self.control.close()
            self.control.listen()
            self._open_for_readers()
            self._write_index()
            self.write_state()
        except OSError as exc:
            log.error("cannot recreate runtime directory %s: %s", self.runtime_dir, error_text(exc))
        self.watcher.watch_runtime_dir()

    def _update_rotate_timer(self) -> None:
        wanted = any(d.spec.log not in ("prefix", "raw") for d in self.daemons.values())
        if wanted and self._rotate_timer is None:
            self._rotate_timer = self.timers.call_later(ROTATE_EVERY, self._rotate)

    def _rotate(self) -> None:
        self._rotate_timer = None
        for d in self.daemons.values():
            if d.spec.log not in ("prefix", "raw"):
                rotate_if_needed(self.log_path(d.spec), d.spec.log_max_bytes, d.spec.log_backups)
                problem = self._log_space_problem(d)
                if problem:
                    log.warning("daemon %r: %s", d.name, problem)
        self._update_rotate_timer()

    def _log_space_problem(self, d: Daemon) -> str | None:
        """A file-logged daemon whose log filesystem is (nearly) full: said in status."""
        if d.spec.log in ("prefix", "raw"):
            return None
        path = self.log_path(d.spec)
        try:
            st = os.statvfs(os.path.dirname(path))
        except OSError:
            return None
        free = st.f_bavail * st.f_frsize
        if free >= LOW_DISK_BYTES:
            return None
        return f"log file {path} is on a full filesystem ({free} bytes free); its output is being lost"

    # ------------------------------------------------------------------ timers per daemon
    def _set_daemon_timer(self, d: Daemon, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_daemon_timer(d)
        self.timers_by_daemon[d.name] = self.timers.call_later(delay, callback)

    def _cancel_daemon_timer(self, d: Daemon) -> None:
        timer = self.timers_by_daemon.pop(d.name, None)
        if timer is not None:
            timer.cancel()

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
            "owners": [
                {"pid": o.pid, "starttime": o.starttime, "seq": o.seq, "decl": o.decl}
                for o in self.owners.values()
            ],
            "held": sorted(self.held),
            "attached_sessions": [[sid, st] for sid, st in self.attached_sessions.items()],
            "smart": [[path, pid, st] for path, (pid, st) in self.smart_known.items()],
            "final": self.final,
        }
        with contextlib.suppress(OSError):
            _atomic_json(os.path.join(self.runtime_dir, STATE_FILE), state)

    def restore_state(self) -> None:
        """After a crash: empty recorded attached sessions, take back live owners and their daemons."""
        path = os.path.join(self.runtime_dir, STATE_FILE)
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return
        if state.get("boot_id") != proc.boot_id():
            return
        for sid, starttime in state.get("attached_sessions", []):
            leader = proc.stat(int(sid))
            if leader is None or leader.starttime == starttime or leader.sid == sid:
                n = proc.kill_session(int(sid))
                if n:
                    log.info("emptied session %d of a previous supervisor's daemon (%d killed)", sid, n)
        self.held = set(state.get("held", []))
        with contextlib.suppress(TypeError, ValueError):  # smart daemons our launches produced
            self.smart_known = {str(p): (int(pid), int(st)) for p, pid, st in state.get("smart", [])}
        if state.get("final"):
            return
        owners = sorted(state.get("owners", []), key=lambda o: o["seq"])
        live = []
        for o in owners:
            st = proc.stat(int(o["pid"]))
            if st is not None and st.starttime == o["starttime"] and st.state not in ("Z", "X"):
                live.append(o)
        for o in live:
            pidfd = proc.pidfd_open(int(o["pid"]))
            if pidfd is None:
                continue
            self.owner_seq += 1
            pid = int(o["pid"])
            self.owners[pid] = Owner(pid, int(o["starttime"]), pidfd, self.owner_seq, o["decl"])
            self.selector.register(pidfd, selectors.EVENT_READ, lambda _m, p=pid: self._owner_gone(p))
        if self.owners:
            newest = max(self.owners.values(), key=lambda o: o.seq)
            log.info("took back %d owner(s) from the previous supervisor", len(self.owners))
            self.apply(newest.decl, reload=False)
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
                )
                for d in self.daemons.values()
            ],
        }

    def _error(self, d: Daemon) -> str | None:
        error = d.error or self._log_space_problem(d) or self.leadership.error(d.name)
        probe_failure = self.prober.last_failure(d.name)
        if error is None and probe_failure:
            error = f"not ready yet: {probe_failure}"
        return error


# ---------------------------------------------------------------------- helpers
def _atomic_json(path: str, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically, through a new 0600 file with an unpredictable name
    (O_EXCL|O_NOFOLLOW: never a file or symlink someone put there first)."""
    tmp = f"{path}.{os.urandom(8).hex()}.tmp"
    data = json.dumps(obj).encode()  # dumps, not dump: the C encoder
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


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


def configure_logging(runtime_dir: str) -> None:
    """Log lines go to the server's stderr and to <runtime>/supervisor.log."""
    root = logging.getLogger("attachdaemon")
    root.setLevel(logging.DEBUG if os.environ.get("ATTACHDAEMON_DEBUG") else logging.INFO)
    fmt = logging.Formatter(f"attachdaemon[{os.getpid()}]: %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    with contextlib.suppress(OSError):
        path = os.path.join(runtime_dir, LOG_FILE)
        private_file(path)
        fh = logging.FileHandler(path)
        fh.setFormatter(logging.Formatter("%(asctime)s " + f"[{os.getpid()}] %(message)s"))
        root.addHandler(fh)


def reopen_log_files() -> None:
    """Point file handlers at a fresh file (after the runtime directory was recreated)."""
    for handler in logging.getLogger("attachdaemon").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                with contextlib.suppress(OSError):
                    private_file(handler.baseFilename)
                handler.stream = handler._open()
            finally:
                handler.release()


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
