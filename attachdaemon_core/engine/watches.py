"""What watches a running daemon on its own behalf, each only when its declaration asks: the
``Limits`` (``max_rss``, ``max_lifetime``, ``restart_at``) and the ``Notifier`` (a ``ready =
{notify = true}`` daemon's NOTIFY_SOCKET and watchdog). Composed into the supervisor in one
piece: it plugs into the ``Starter`` (a notify daemon's variables; the limits' timers armed when a
daemon runs) and the ``Prober`` (where a ``log`` readiness probe reads a log file).

Both are built, and their modules imported, only once a declaration asks for them: a supervisor
of daemons without limits or notify never loads ``engine/limits.py``, ``engine/notify.py`` or what
they pull (``datetime``, their decide modules). Once built they stay, and tidy themselves when
the declarations that asked for them are gone."""

from __future__ import annotations

import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.stopper import Stopper
from attachdaemon_core.spec.model import DaemonSpec

if TYPE_CHECKING:
    from attachdaemon_core.engine.daemon import Daemon
    from attachdaemon_core.engine.limits import Limits
    from attachdaemon_core.engine.notify import Notifier


def limited(spec: DaemonSpec) -> bool:
    """Whether ``spec`` declares a limit or a planned restart."""
    return spec.max_rss is not None or spec.max_lifetime is not None or bool(spec.restart_at)


def notifies(spec: DaemonSpec) -> bool:
    """Whether ``spec`` declares ``ready = {notify = true}``."""
    return spec.ready is not None and spec.ready.notify


class Watches:
    """The limits and the notify sockets of the starter's daemons."""

    def __init__(
        self, starter: Starter, prober: Prober, stopper: Stopper, selector: selectors.BaseSelector
    ) -> None:
        self.daemons: Mapping[str, Daemon] = starter.daemons
        self.starter = starter
        self.prober = prober
        self.stopper = stopper
        self.selector = selector
        self.limits: Limits | None = None  # built when a declaration first asks (see _limits)
        self.notifier: Notifier | None = None
        starter.extra_env = self._env_for
        starter.on_running = self._running
        prober.log_path = starter.log_path

    def _limits(self) -> Limits:
        if self.limits is None:
            from attachdaemon_core.engine.limits import Limits

            self.limits = Limits(self.daemons, timers=self.starter.timers, restart=self.stopper.restart)
        return self.limits

    def _notifier(self) -> Notifier:
        if self.notifier is None:  # (a watchdog restart goes through the limits)
            from attachdaemon_core.engine.notify import Notifier

            self.notifier = Notifier(self._limits(), self.prober, self.selector, self.starter.runtime_dir)
        return self.notifier

    def _env_for(self, d: Daemon) -> Mapping[str, str]:
        """A notify daemon's NOTIFY_SOCKET (and WATCHDOG_USEC); empty for others."""
        return self._notifier().env_for(d) if notifies(d.spec) else {}

    def _running(self, d: Daemon) -> None:
        """``d`` runs (started or adopted): its limits' timers, if it declares any."""
        if self.limits is not None or limited(d.spec):
            self._limits().running(d)

    def declarations_changed(self) -> None:
        """After each apply: the max_rss timer, planned restarts, sockets of notify daemons."""
        specs = [d.spec for d in self.daemons.values()]
        if any(notifies(s) for s in specs):
            self._notifier()
        elif any(limited(s) for s in specs):
            self._limits()
        if self.limits is not None:
            self.limits.declarations_changed()
        if self.notifier is not None:
            self.notifier.declarations_changed()

    def close(self) -> None:
        """At the supervisor's exit: the notify sockets closed and their files removed."""
        if self.notifier is not None:
            self.notifier.close_all()
        if self.limits is not None:
            self.limits.close()
