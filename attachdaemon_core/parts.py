"""What the supervisor's parts share: its state, and the operations one part asks of another.

:class:`~attachdaemon_core.supervisor.Supervisor` is assembled from parts (``smart``,
``stopping``) that each keep one concern in one module. They share the supervisor's state, so
each declares here what it uses from the others; the supervisor defines all of it.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable

from .control.server import ControlServer
from .daemon import Daemon, ExitStatus
from .leadership import Leadership
from .logs import Capture, Output
from .loop import Timers
from .readiness import Prober
from .spawn import Credentials
from .spec import DaemonSpec
from .states import State


class SupervisorParts:
    """Declarations only: the state and cross-part operations of the supervisor."""

    # -- state (set in Supervisor.__init__)
    daemons: dict[str, Daemon]
    children: dict[int, Callable[[ExitStatus], None]]
    exit_status: dict[int, ExitStatus]
    smart_known: dict[str, tuple[int, int]]
    selector: selectors.BaseSelector
    timers: Timers
    clock: Callable[[], float]
    env: dict[str, str]
    final: bool
    exiting: bool
    capture: Capture
    control: ControlServer
    output: Output
    prober: Prober
    leadership: Leadership
    _wave: set[str]

    # -- operations one part asks of another
    def start(self, d: Daemon) -> None:
        raise NotImplementedError

    def stop(self, d: Daemon, *, sig: int | None = None, then: Callable[[], None] | None = None) -> None:
        raise NotImplementedError

    def _spawn(self, d: Daemon, *, attached: bool) -> int | None:
        raise NotImplementedError

    def _now_running(self, d: Daemon) -> None:
        raise NotImplementedError

    def _settle(self, d: Daemon, state: State, delay: float, what: str) -> None:
        raise NotImplementedError

    def _stop_done(self, d: Daemon) -> None:
        raise NotImplementedError

    def _stop_progress(self, d: Daemon) -> None:
        raise NotImplementedError

    def _launch_leftovers(self, d: Daemon) -> list[int]:
        raise NotImplementedError

    def _credentials(self, spec: DaemonSpec) -> Credentials | None:
        raise NotImplementedError

    def log_path(self, spec: DaemonSpec) -> str:
        raise NotImplementedError

    def save_state(self) -> None:
        raise NotImplementedError

    def _spawn_failed(self, d: Daemon, reason: str) -> None:
        raise NotImplementedError

    def _kill_pid(self, pid: int, sig: int) -> None:
        raise NotImplementedError

    def _set_daemon_timer(self, d: Daemon, delay: float, callback: Callable[[], None]) -> None:
        raise NotImplementedError

    def _cancel_daemon_timer(self, d: Daemon) -> None:
        raise NotImplementedError

    def _forget_session(self, sid: int) -> None:
        raise NotImplementedError

    def _tell_guard(self, line: str) -> None:
        raise NotImplementedError

    def write_state(self) -> None:
        raise NotImplementedError
