"""Readiness probing inside the supervisor's loop (docs/declarations.md): one probe run per daemon start,
every 0.1 s backing off to 1 s until its first success, then it stops. It never restarts a
daemon; after ``ready_timeout`` the daemon's error says so and dependents keep waiting.

A daemon that reports readiness itself is not probed on a timer: ``notify`` waits for READY=1
(``engine/notify.py`` calls :meth:`Prober.report_ready`); ``log`` matches each output line as it
is captured (``prefix``), or reads a log file's new lines at the probe intervals."""

from __future__ import annotations

import logging
import re
import selectors
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from attachdaemon_core.engine import probes
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.logs import file_size, lines_since
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc.spawn import SpawnError
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")


class RunChild(Protocol):
    """Starts a probe child for ``spec`` and returns its pid; ``as_daemon``: with the daemon's
    user, group, supplementary groups and environment (a command probe is the declaration's code)."""

    def __call__(
        self, argv: tuple[str, ...], spec: DaemonSpec, done: Callable[[ExitStatus], None], *, as_daemon: bool
    ) -> int: ...


@dataclass
class _Run:
    deadline: float
    interval: float = 0.0
    timer: Timer | None = None
    sock: socket.socket | None = None
    last: str | None = None
    timed_out: bool = False
    offset: int = 0  # a log probe on a log file: where the lines of this run start


class Prober:
    """Runs each daemon's ``ready`` probe until it passes, then calls ``on_ready``."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        timers: Timers,
        *,
        run_child: RunChild,
        kill: Callable[[int, int], None],
        on_ready: Callable[[Daemon], None],
        log_path: Callable[[DaemonSpec], str] | None = None,
    ) -> None:
        self.selector = selector
        self.timers = timers
        self.run_child = run_child
        self.kill = kill
        self.on_ready = on_ready
        self.log_path = log_path
        self.runs: dict[str, _Run] = {}

    def start(self, d: Daemon) -> None:
        self.cancel(d)
        run = self.runs[d.name] = _Run(deadline=self.timers.clock() + d.spec.ready_timeout)
        probe = d.spec.ready
        if probe is not None and probe.self_reported:
            self._start_self_reported(d, run, probe.notify)
            return
        self._later(d, 0.0)

    def report_ready(self, d: Daemon) -> None:
        """The daemon said it is ready (sd_notify READY=1), now or again after RELOADING=1."""
        if d.name in self.runs:
            self._result(d, None)
        else:
            log.info("daemon %r is ready again", d.name)
            self.on_ready(d)

    # ------------------------------------------------------------------ self-reported readiness
    def _start_self_reported(self, d: Daemon, run: _Run, notify: bool) -> None:
        """No probe timer: one timer at ``ready_timeout`` for the warning, and the log's lines."""
        if d.adopted and notify:  # its READY=1 went to the supervisor that started it
            log.info("daemon %r adopted: ready (its READY=1 was sent to an earlier supervisor)", d.name)
            self._result(d, None)
            return
        pattern = d.spec.ready.log if d.spec.ready is not None else None
        if pattern is None or d.spec.log == "prefix":
            run.timer = self.timers.call_at(run.deadline, lambda: self._self_reported_late(d))
        if pattern is None:
            return
        regex = re.compile(pattern)
        if d.spec.log == "prefix":
            d.line_watch = lambda line: self._line(d, regex, line)
            return
        path = self.log_path(d.spec) if self.log_path is not None else d.spec.log
        run.offset = 0 if d.adopted else (d.launch.log_offset if d.launch is not None else file_size(path))
        self._poll_file(d, regex, path)

    def _line(self, d: Daemon, regex: re.Pattern[str], line: str) -> None:
        if d.name in self.runs and regex.search(line):
            self._result(d, None)

    def _poll_file(self, d: Daemon, regex: re.Pattern[str], path: str) -> None:
        run = self.runs.get(d.name)
        if run is None or d.state != State.RUNNING:
            return
        new = lines_since(path, run.offset, lines=1000, limit=1 << 20)
        run.offset = max(run.offset, file_size(path))
        if any(regex.search(line) for line in new):
            self._result(d, None)
            return
        self._late_check(d, run)
        run.interval = probes.next_interval(run.interval)
        run.timer = self.timers.call_later(run.interval, lambda: self._poll_file(d, regex, path))

    def _self_reported_late(self, d: Daemon) -> None:
        run = self.runs.get(d.name)
        if run is not None and d.state == State.RUNNING:
            self._late_check(d, run)

    def _late_check(self, d: Daemon, run: _Run) -> None:
        probe = d.spec.ready
        if self.timers.clock() >= run.deadline and not run.timed_out and probe is not None:
            run.timed_out = True
            d.error = f"not ready after {d.spec.ready_timeout:g}s ({probe.describe()})"
            log.warning("daemon %r %s; dependents keep waiting", d.name, d.error)

    def last_failure(self, name: str) -> str | None:
        run = self.runs.get(name)
        return run.last if run is not None else None

    def cancel(self, d: Daemon) -> None:
        run = self.runs.pop(d.name, None)
        d.line_watch = None
        if run is None:
            return
        if run.timer is not None:
            run.timer.cancel()
        if run.sock is not None:
            self.selector.unregister(run.sock)
            run.sock.close()

    def _later(self, d: Daemon, delay: float) -> None:
        run = self.runs.get(d.name)
        if run is not None:
            run.timer = self.timers.call_later(delay, lambda: self._probe(d))

    def _probe(self, d: Daemon) -> None:
        run = self.runs.get(d.name)
        probe = d.spec.ready
        if run is None or probe is None or d.state != State.RUNNING:
            return
        if self.timers.clock() > run.deadline and not run.timed_out:
            run.timed_out = True
            d.error = f"not ready after {d.spec.ready_timeout:g}s ({probe.describe()})"
            log.warning("daemon %r %s; dependents keep waiting", d.name, d.error)
        if probe.tcp is not None:
            self._tcp(d, run, *probe.tcp)
        elif probe.postgres:
            self._result(d, probes.postgres_ready(d.spec))
        else:
            argv = probes.probe_argv(probe)
            assert argv is not None
            self._child(d, argv, as_daemon=probe.command is not None)

    def _tcp(self, d: Daemon, run: _Run, host: str, port: int) -> None:
        try:
            sock, connected = probes.tcp_connect_start(host, port)
        except OSError as exc:
            self._result(d, exc.strerror or str(exc))
            return
        if connected:
            sock.close()
            self._result(d, None)
            return
        run.sock = sock
        self.selector.register(sock, selectors.EVENT_WRITE, lambda _m: self._tcp_done(d, sock))
        run.timer = self.timers.call_later(probes.PROBE_TIMEOUT, lambda: self._tcp_done(d, sock, True))

    def _tcp_done(self, d: Daemon, sock: socket.socket, timed_out: bool = False) -> None:
        run = self.runs.get(d.name)
        if run is None or run.sock is not sock:
            return
        run.sock = None
        if run.timer is not None:
            run.timer.cancel()
        self.selector.unregister(sock)
        result = "timed out" if timed_out else probes.tcp_connect_result(sock)
        sock.close()
        self._result(d, result)

    def _child(self, d: Daemon, argv: tuple[str, ...], *, as_daemon: bool) -> None:
        killer: list[Timer] = []

        def done(status: ExitStatus) -> None:
            for k in killer:
                k.cancel()
            self._result(d, None if status.success else f"probe {status.describe()}")

        try:
            pid = self.run_child(argv, d.spec, done, as_daemon=as_daemon)
        except (KeyError, OSError, SpawnError) as exc:  # the probe program could not start
            self._result(d, str(exc))
            return
        killer.append(self.timers.call_later(probes.PROBE_TIMEOUT, lambda: self.kill(pid, signal.SIGKILL)))

    def _result(self, d: Daemon, failure: str | None) -> None:
        run = self.runs.get(d.name)
        if run is None:
            return
        if failure is None:
            self.cancel(d)
            if d.error and d.error.startswith("not ready"):
                d.error = None
            log.info("daemon %r is ready", d.name)
            self.on_ready(d)
            return
        run.last = failure
        run.interval = probes.next_interval(run.interval)
        self._later(d, run.interval)
