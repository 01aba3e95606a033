"""Starting daemons: the gates before a start (the final stop, the leader lock, ``depends_on``
and its conditions, through :class:`~attachdaemon_core.engine.dependents.Dependents`),
the spawn itself through the OS seam, and what follows a run (running, ready, restart now, after a
backoff, or rest). The daemon kinds' runners (``AttachedRunner``, ``SmartRunner``) call back here;
jobs (``schedule``) are timed by its ``CronRunner`` (engine/cron.py) and started here too.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, MutableMapping

from attachdaemon_core.engine import launch_request, launches
from attachdaemon_core.engine.cron import CronRunner
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.decide.start_gate import offered_starts
from attachdaemon_core.engine.dependents import Dependents
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.logs import Capture
from attachdaemon_core.engine.loop import Timers
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.states import RUNNING_STATES, State
from attachdaemon_core.osproc.spawn import Credentials, SpawnError, SpawnRequest, environment_for
from attachdaemon_core.spec.messages import error_text
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")


class Starter:
    """Starts daemons and settles them after each run."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        held: set[str],
        env: Mapping[str, str],
        runtime_dir: str,
        os: RealOS,
        clock: Callable[[], float],
        timers: Timers,
        children: MutableMapping[int, Callable[[ExitStatus], None]],
        capture: Capture,
        leadership: Leadership,
        prober: Callable[[], Prober],
        run_attached: Callable[[Daemon], None],
        run_smart: Callable[[Daemon], None],
        stop_job: Callable[..., None],
        final: Callable[[], bool],
        shut_down_owners: Callable[[], None],
        extra_env: Callable[[Daemon], Mapping[str, str]] = lambda _d: {},
        on_running: Callable[[Daemon], None] = lambda _d: None,
        restart: Callable[[Daemon], None],
    ) -> None:
        self.daemons = daemons
        self.held = held  # names stopped by command: not started again until told
        self.env = env  # the owners' environment (updated in place by the declarations)
        self.runtime_dir = runtime_dir
        self.os = os
        self.clock = clock
        self.timers = timers
        self.children = children
        self.capture = capture
        self.leadership = leadership
        self.prober = prober  # (built after this: the prober calls back ``became_ready``)
        self.run_attached = run_attached
        self.run_smart = run_smart
        self.final = final
        self.shut_down_owners = shut_down_owners
        self.extra_env = extra_env  # a notify daemon's NOTIFY_SOCKET (plugged in by engine/watches.py)
        self.on_running = on_running  # its limits' timers (plugged in by engine/watches.py)
        self.default_user: tuple[int, int] | None = None  # the server's user, from the declarations
        self.dependents = Dependents(
            daemons, timers=timers, restart=restart, start_waiting=self.start_waiting, final=final
        )
        # Jobs (``schedule``): when each runs; a run is started through start() like a daemon.
        self.jobs = CronRunner(
            daemons,
            timers=timers,
            children=children,
            starter=self,
            stop=stop_job,
            runnable=lambda d: not final() and d.name not in held,
        )

    # ------------------------------------------------------------------ starting
    def start(self, d: Daemon) -> None:
        if self.final():
            return
        d.runtime.cancel_timer()
        if d.state in RUNNING_STATES and d.pid is not None:
            return
        if d.spec.leader is not None and not self.leadership.is_leading(d.name):
            self.leadership.ensure(d)
            if d.state != State.STANDBY:
                d.set_state(State.STANDBY, "waiting for the leader lock")
            return
        if not self.dependents.may_start(d):  # (d.error says on what it waits)
            if d.state != State.STARTING:
                d.set_state(State.STARTING, d.error or "")
            return
        if d.spec.schedule is not None:
            self.jobs.activate_or_run(d)  # wait for its next run, or run it now
        elif d.spec.kind == "attached":
            self.run_attached(d)
        elif launches.lock_pidfile(d):
            self.run_smart(d)

    def start_waiting(self) -> None:
        for d in offered_starts(list(self.daemons.values()), held=self.held):
            self.start(d)  # (which may start others: each is checked when reached)

    def credentials(self, spec: DaemonSpec) -> Credentials | None:
        return launch_request.credentials_for(spec, self.default_user)

    def log_path(self, spec: DaemonSpec) -> str:
        return launch_request.log_path(self.runtime_dir, spec)

    def spawn(self, d: Daemon, *, attached: bool) -> int | None:
        """Spawn ``d``'s command; on failure record why and schedule the retry."""
        try:
            creds = self.credentials(d.spec)
            req, to_close = launch_request.daemon_request(
                d,
                base_env=self.env,
                creds=creds,
                token=self.leadership.token(d.name),
                capture=self.capture,
                path=self.log_path(d.spec),
                attached=attached,
                extra_env=self.extra_env(d),
            )
        except (KeyError, OSError, SpawnError) as exc:
            self.spawn_failed(d, error_text(exc))
            return None
        try:
            pid = self.os.spawn(req)
        except SpawnError as exc:
            self.capture.close(d.name)
            self.spawn_failed(d, str(exc))
            return None
        finally:
            for fd in to_close:
                os.close(fd)
        return pid

    def spawn_failed(self, d: Daemon, reason: str) -> None:
        decision = d.decide_after_spawn_failure(reason, self.clock())
        d.tell(decision)
        d.error = reason
        self.settle(d, decision.state, decision.delay, f"could not start: {reason}")

    def run_probe_child(
        self, argv: tuple[str, ...], spec: DaemonSpec, done: Callable[[ExitStatus], None], *, as_daemon: bool
    ) -> int:
        """A probe child: a command probe runs as the daemon's user with its environment (it is the
        declaration's code); the http probe is our own fixed code and runs as the supervisor."""
        if as_daemon:
            creds = self.credentials(spec)
            req = launch_request.side_request(argv, spec, environment_for(self.env, spec, creds), creds)
        else:
            req = SpawnRequest(argv=argv, env=dict(self.env), cwd=spec.cwd)
        pid = self.os.spawn(req)
        self.children[pid] = done
        return pid

    # ------------------------------------------------------------------ after a start or a run
    def now_running(self, d: Daemon) -> None:
        if d.state != State.RUNNING:
            d.set_state(State.RUNNING)
        if d.spec.leader is not None and d.pid is not None:
            st = self.os.stat(d.pid)
            if st is not None:  # the holder owns this session's deadline from now on
                self.leadership.session(d, st.sid, st.starttime)
        self.on_running(d)
        if d.spec.oneshot:  # ready once it exits 0 (Daemon.decide_after_exit, told by Daemon.tell)
            d.ready = False
        elif d.spec.ready is None:
            self.became_ready(d)
        else:
            d.ready = False
            self.prober().start(d)

    def became_ready(self, d: Daemon) -> None:
        d.ready = True
        self.start_waiting()

    def settle(self, d: Daemon, state: State, delay: float, what: str) -> None:
        """After a run ended: restart (now or after ``delay``) or rest in ``state``."""
        d.runtime.cancel_timer()
        self.leadership.stopped(d.name)
        if d.spec.schedule is not None:  # a job: no restart policy, its schedule says when
            self.jobs.run_ended(d, what)
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
                self.shut_down_owners()
            elif self.dependents.settled(d, state, what):
                pass  # (a one-shot's end, said its own way)
            elif state == State.FATAL:
                log.error("daemon %r %s; giving up (fatal)", d.name, what)
            else:
                log.info("daemon %r %s; not restarting (%s)", d.name, what, state.value)

    def _backoff_over(self, d: Daemon) -> None:
        if d.state == State.BACKOFF:
            d.set_state(State.STARTING)
            self.start(d)
