"""Leader daemons (docs/leader.md): what the supervisor does when this host's holder of a daemon's
leader lock acquires it (start the daemon, run its ``on_lead`` hook) or gives it up or may have
lost it (stop the daemon whatever its kind, run ``on_unlead``, wait on standby).

``Leadership`` keeps the holders and the locks; this is the daemon's side of that link.
Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, MutableMapping

from attachdaemon_core.engine import launch_request
from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc.spawn import SpawnError, environment_for

log = logging.getLogger("attachdaemon")


class LeaderLink:
    """Starts a leader daemon when its lock is ours, stops it when it no longer is."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        held: set[str],
        env: Mapping[str, str],
        os: RealOS,
        children: MutableMapping[int, Callable[[ExitStatus], None]],
        leadership: Leadership,
        starter: Starter,
        stop: Callable[..., None],
        final: Callable[[], bool],
    ) -> None:
        self.daemons = daemons
        self.held = held  # names stopped by command: they do not lead until started again
        self.env = env
        self.os = os  # a hook is started through the OS seam
        self.children = children
        self.leadership = leadership
        self.starter = starter
        self.stop = stop  # stop(d, then=...)
        self.final = final

    def wanted(self, name: str) -> bool:
        d = self.daemons.get(name)
        return d is not None and d.spec.leader is not None and not self.final() and name not in self.held

    def acquired(self, name: str) -> None:
        """Our holder acquired the lock: start the daemon."""
        d = self.daemons.get(name)
        if d is None or not self.wanted(name):
            return
        if d.state == State.STANDBY:
            if d.events is not None:  # the event stream (docs/monitoring.md)
                d.events.emit("leader-acquired", name, lock=d.spec.leader.lock if d.spec.leader else None)
            d.set_state(State.STARTING, "leader lock acquired")
            d.quick_deaths = 0
            self.hook(d, "on_lead")
            self.starter.start(d)

    def lost(self, name: str, reason: str) -> None:
        """This host gave up or may have lost the lock: stop the daemon, whatever its kind."""
        d = self.daemons.get(name)
        if d is None:
            return
        d.error = f"lost the leader lock: {reason}"
        lock = d.spec.leader.lock if d.spec.leader else None
        if d.events is not None:
            d.events.emit("leader-lost", name, lock=lock, reason=reason)
        self.stop(d, then=functools.partial(self._after_lost, d))

    def hook(self, d: Daemon, which: str) -> None:
        """Run a lord/unlord hook (uWSGI's Legion hooks): fire and forget, its end logged."""
        leader = d.spec.leader
        argv = getattr(leader, which, ()) if leader is not None else ()
        if not argv or leader is None:
            return
        try:
            # As the daemon's user, like the daemon: a hook is the declaration's code, not ours.
            creds = self.starter.credentials(d.spec)
            env = environment_for(self.env, d.spec, creds)
            env["ATTACHDAEMON_LEADER_LOCK"] = leader.lock
            token = self.leadership.token(d.name)
            if token is not None:
                env["ATTACHDAEMON_LEADER_TOKEN"] = str(token)
            pid = self.os.spawn(launch_request.side_request(argv, d.spec, env, creds))
        except (KeyError, SpawnError) as exc:
            log.error("daemon %r: its %s hook could not start: %s", d.name, which, exc)
            return

        def done(status: ExitStatus) -> None:
            level = logging.INFO if status.success else logging.WARNING
            log.log(level, "daemon %r: %s hook (pid %d) %s", d.name, which, pid, status.describe())

        self.children[pid] = done

    def _after_lost(self, d: Daemon) -> None:
        self.hook(d, "on_unlead")  # only once the daemon is reaped
        if d.state in (State.STOPPED, State.BACKOFF) and self.wanted(d.name):
            d.set_state(State.STANDBY, "following")
            self.leadership.ensure(d)
