"""Dependencies at run time: the start gate with ``depends_on``'s conditions (``ready``,
``started``, ``completed``), one-shot tasks' ends, and dependents that follow a dependency
declared with ``restart = true`` (docs/declarations.md, "depends_on" and "One-shot tasks";
docs/events.md).

Composed into the supervisor: it asks :mod:`.decide.conditions` (pure) and acts through the
callbacks it is given. Runs in the supervisor process, on its loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.decide.conditions import followers, unmet, waiting_text
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.states import State

log = logging.getLogger("attachdaemon")


class Dependents:
    """The start gate, what status says a daemon waits on, and ``restart = true``."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        timers: Timers,
        restart: Callable[[Daemon], None],
        start_waiting: Callable[[], None],
        final: Callable[[], bool],
    ) -> None:
        self.daemons = daemons
        self.timers = timers
        self.restart = restart
        self.start_waiting = start_waiting  # offer a start to every daemon at the gate
        self.final = final
        self._said: dict[str, str] = {}  # daemon -> what the log last said it waits on
        self._offer: Timer | None = None

    def watch(self, d: Daemon) -> None:
        """Hear of ``d``'s state changes (its dependents may follow them)."""
        d.on_state = self._state_changed

    def may_start(self, d: Daemon) -> bool:
        """Whether every dependency of ``d`` meets its condition. If not, ``d.error`` says what
        it waits on (or which failure holds it), and the log says so once per change."""
        waits = unmet(d.spec.requirements(), self.daemons)
        if not waits:
            self._said.pop(d.name, None)
            return True
        text = waiting_text(waits) or ""
        d.error = text
        if self._said.get(d.name) != text:
            self._said[d.name] = text
            level = logging.WARNING if any(w.failed for w in waits) else logging.INFO
            log.log(level, "daemon %r %s", d.name, text)
        return False

    def waiting_on(self, d: Daemon) -> list[dict[str, Any]]:
        """Status's ``waiting_on``: what holds ``d`` at the start gate, now (empty unless it
        waits there: starting, with no process and no stop in progress). ``d.error`` is brought
        up to date with it: a change this loop turn made is not offered to the gate yet."""
        if d.state != State.STARTING or d.pid is not None or d.launcher_pid is not None or d.stopping:
            return []
        waits = unmet(d.spec.requirements(), self.daemons)
        if waits:
            d.error = waiting_text(waits)
        return [w.as_status() for w in waits]

    def settled(self, d: Daemon, state: State, what: str) -> bool:
        """Say how a one-shot's run ended (``True``: said; other daemons: ``False``)."""
        if not d.spec.oneshot or state not in (State.EXITED, State.FATAL):
            return False
        if d.ready:
            log.info("one-shot %r %s: completed", d.name, what)
        else:
            log.error("one-shot %r %s: failed; what depends on it does not start", d.name, what)
        return True

    def _state_changed(self, d: Daemon, old: State, new: State) -> None:
        """After the change is carried out (never from inside it): the dependents declared with
        ``restart = true`` follow it, and those at the gate are offered a start again, which
        starts them or brings what they say they wait on up to date."""
        if self.final():
            return
        names = followers(d, old, new, self.daemons.values())
        if names:
            self.timers.call_later(0.0, functools.partial(self._follow, d.name, names))
        if self._offer is None and any(self._waits_on(w, d.name) for w in self.daemons.values()):
            self._offer = self.timers.call_later(0.0, self._offer_starts)

    def _waits_on(self, d: Daemon, name: str) -> bool:
        at_gate = d.state == State.STARTING and d.pid is None and d.launcher_pid is None
        return at_gate and not d.stopping and name in d.spec.depends_on

    def _offer_starts(self) -> None:
        self._offer = None
        if not self.final():
            self.start_waiting()

    def _follow(self, dependency: str, names: list[str]) -> None:
        for name in names:
            d = self.daemons.get(name)
            if d is None or d.stopping or self.final() or (d.pid is None and d.launcher_pid is None):
                continue
            log.info(
                "daemon %r restarting: %r, which it depends on with restart = true, went down",
                name,
                dependency,
            )
            self.restart(d)
