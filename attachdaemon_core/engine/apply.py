"""Applying the newest owner's declarations: which daemons to add, start, restart, signal or
forget is decided by ``engine/decide/reload.py`` (docs/reload.md); this carries the actions out.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from attachdaemon_core.engine import launches
from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.decide.reload import Do, Seen, plan_reload
from attachdaemon_core.engine.events import EventLog
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.runtime_dir import RuntimeDir
from attachdaemon_core.engine.smart import SmartRunner
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.stopper import Stopper
from attachdaemon_core.spec.messages import signal_name
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")


class Declarations:
    """Makes the running set match the declarations in force."""

    def __init__(
        self,
        daemons: MutableMapping[str, Daemon],
        *,
        held: set[str],
        env: dict[str, str],
        runtime: RuntimeDir,
        starter: Starter,
        stopper: Stopper,
        smart: SmartRunner,
        leadership: Leadership,
        changed: Sequence[Callable[[], None]],
    ) -> None:
        self.daemons = daemons
        self.held = held  # names stopped by command: not started by a reload
        self.env = env  # the owners' environment: updated in place (the runners hold this dict)
        self.runtime = runtime
        self.starter = starter
        self.stopper = stopper
        self.smart = smart
        self.leadership = leadership
        self.changed = changed  # after each apply, in order (jobs' schedules, touch files, limits...)
        self.events = EventLog()  # the event stream: each daemon tells it its changes (docs/monitoring.md)

    def apply(self, decl: dict[str, Any], *, reload: bool) -> None:
        """Make the running set match ``decl``: start added, stop removed, restart changed."""
        specs = [DaemonSpec.from_wire(s) for s in decl.get("specs", [])]
        self.env.clear()
        self.env.update(decl.get("env") or {})
        default = decl.get("default_user")
        self.starter.default_user = (
            (int(default["uid"]), int(default["gid"])) if isinstance(default, dict) else None
        )
        self.runtime.allow_readers({int(u) for u in decl.get("read_only_uids") or []})
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
        for hook in self.changed:
            hook()
        self.starter.start_waiting()

    def _carry_out(self, do: str, name: str, spec: DaemonSpec) -> None:
        if do == Do.ADD:
            self.daemons[name] = Daemon(spec, events=self.events)
            self.starter.dependents.watch(self.daemons[name])
            return
        d = self.daemons[name]
        if do == Do.START:
            self.starter.start(d)
        elif do == Do.RELEAD:
            log.info("daemon %r: its leader lock changed; following the new one", name)
            self.stopper.stop(d, then=functools.partial(self._relead, d))
        elif do == Do.RESTART:
            log.info("daemon %r changed; restarting it", name)
            self.stopper.restart(d)
        elif do == Do.RELOAD_RESTART:
            log.info("daemon %r restarted for the server reload (on_reload: restart)", name)
            self.stopper.restart(d, sig=spec.reload_stop_signal)
        elif do == Do.RELOAD_SIGNAL:
            log.info("daemon %r sent %s for the server reload", name, signal_name(spec.reload_signal))
            self.stopper.send_signal(d, spec.reload_signal)

    def _forget(self, d: Daemon) -> None:
        del self.daemons[d.name]
        if d.spec.leader is not None:  # stopped whatever its kind, then the lock released
            log.info("leader daemon %r was removed from the declarations; stopping it", d.name)
            self.daemons[d.name] = d
            self.stopper.stop(d, then=functools.partial(self._forget_leader, d))
        elif d.spec.kind == "attached":
            log.info("daemon %r was removed from the declarations; stopping it", d.name)
            self.daemons[d.name] = d
            self.stopper.stop(d, then=lambda: self._drop(d))
        else:
            if d.pid is not None:
                log.info(
                    "smart daemon %r was removed from the declarations; pid %d left running, unsupervised",
                    d.name,
                    d.pid,
                )
            self.smart.unwatch(d)
            launches.unlock_pidfile(d)

    def _relead(self, d: Daemon) -> None:
        self.leadership.drop(d.name, release=True)
        if d.spec.autostart and d.name not in self.held:
            self.starter.start(d)

    def _forget_leader(self, d: Daemon) -> None:
        self.leadership.drop(d.name, release=True)
        self._drop(d)

    def _drop(self, d: Daemon) -> None:
        if self.daemons.get(d.name) is d:
            del self.daemons[d.name]
