"""What watches a running daemon on its own behalf, each only when its declaration asks: the
``Limits`` (``max_rss``, ``max_lifetime``, ``restart_at``) and the ``Notifier`` (a ``ready =
{notify = true}`` daemon's NOTIFY_SOCKET and watchdog). Composed into the supervisor in one
piece: it plugs into the ``Starter`` (a notify daemon's variables; the limits' timers armed when a
daemon runs) and the ``Prober`` (where a ``log`` readiness probe reads a log file)."""

from __future__ import annotations

import selectors

from attachdaemon_core.engine.limits import Limits
from attachdaemon_core.engine.notify import Notifier
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.stopper import Stopper


class Watches:
    """The limits and the notify sockets of the starter's daemons."""

    def __init__(
        self, starter: Starter, prober: Prober, stopper: Stopper, selector: selectors.BaseSelector
    ) -> None:
        self.limits = Limits(starter.daemons, timers=starter.timers, restart=stopper.restart)
        self.notifier = Notifier(self.limits, prober, selector, starter.runtime_dir)
        starter.extra_env = self.notifier.env_for
        starter.on_running = self.limits.running
        prober.log_path = starter.log_path

    def declarations_changed(self) -> None:
        """After each apply: the max_rss timer, planned restarts, sockets of notify daemons."""
        self.limits.declarations_changed()
        self.notifier.declarations_changed()

    def close(self) -> None:
        """At the supervisor's exit: the notify sockets closed and their files removed."""
        self.notifier.close_all()
        self.limits.close()
