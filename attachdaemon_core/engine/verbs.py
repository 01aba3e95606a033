"""The supervisor's answers to the control verbs (docs/cli.md, docs/status-json.md): one method
``verb_<name>`` per verb of the registry (:mod:`attachdaemon_core.control.verbs`), which has
checked the arguments' types before the call.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from attachdaemon_core import __version__
from attachdaemon_core.control.server import CommandError, Peer, Stream
from attachdaemon_core.control.verbs import VERBS
from attachdaemon_core.engine import report
from attachdaemon_core.engine.cron import CronRunner
from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.events import EventLog
from attachdaemon_core.engine.leadership import Leadership
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.owners import Owners
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.starter import Starter
from attachdaemon_core.engine.states import RUNNING_STATES, State
from attachdaemon_core.engine.stopper import Stopper
from attachdaemon_core.engine.upkeep import Upkeep
from attachdaemon_core.spec.model import DaemonSpec


class ControlAnswers:
    """What the supervisor answers on its control socket."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        held: set[str],
        owners: Owners,
        starter: Starter,
        stopper: Stopper,
        leadership: Leadership,
        prober: Prober,
        upkeep: Upkeep,
        cron: CronRunner,
        os: RealOS,
        clock: Callable[[], float],
        save_state: Callable[[], None],
        about: dict[str, Any],
        events: EventLog,
    ) -> None:
        self.daemons = daemons
        self.held = held  # names stopped by command: not started again until told
        self.owners = owners
        self.starter = starter
        self.stopper = stopper
        self.leadership = leadership
        self.prober = prober
        self.upkeep = upkeep
        self.cron = cron
        self.os = os  # the supervisor's pid, each daemon's /proc stat
        self.clock = clock
        self.save_state = save_state
        self.about = about  # the supervisor's own lines of ``status``: started_at, respawns, runtime_dir
        self.events = events

    def handle(self, verb: str, args: dict[str, Any], peer: Peer) -> Any:
        """Answer a control verb through the method the registry names (``verb_<name>``)."""
        answer: Callable[[dict[str, Any]], Any] | None = getattr(self, VERBS[verb].method, None)
        if answer is None:
            raise CommandError(f"verb {verb!r} is not answered by the supervisor")
        return answer(args)

    # ------------------------------------------------------------------ owners
    def add_owner(self, ident: dict[str, Any], decl: dict[str, Any], *, reload: bool = True) -> Any:
        first = self.owners.add(ident, decl, reload=reload)
        return {"pid": self.os.getpid(), "owners": sorted(self.owners.by_pid), "first": first}

    def reload_owner(self, ident: dict[str, Any], decl: dict[str, Any], policies: bool) -> Any:
        if not self.owners.reload(ident, decl, policies):
            return self.add_owner(ident, decl, reload=policies)
        return {"pid": self.os.getpid(), "owners": sorted(self.owners.by_pid)}

    def remove_owner(self, pid: int, *, why: str) -> dict[str, Any]:
        self.owners.remove(pid, why=why)
        return {"final": self.stopper.final}

    # ------------------------------------------------------------------ the verbs
    def verb_ping(self, _args: dict[str, Any]) -> Any:
        return {"pid": self.os.getpid()}

    def verb_status(self, _args: dict[str, Any]) -> Any:
        return self.status()

    def verb_metrics(self, _args: dict[str, Any]) -> Any:
        """The status plus what a scrape reads from /proc now (docs/monitoring.md). Its module
        is imported at the first scrape: a supervisor nobody scrapes never loads it."""
        from attachdaemon_core.engine.scrape import metrics_answer

        return metrics_answer(self.status(), self.daemons.values())

    def verb_events(self, args: dict[str, Any]) -> Any:
        """The events kept after ``after``; with ``follow``, a Stream that pushes each new one."""
        answer = {"supervisor": self.os.getpid(), **self.events.since(int(args.get("after") or 0))}
        if not args.get("follow"):
            return answer
        return Stream(answer, lambda push: self.events.subscribe(lambda e: push({"event": e})))

    def verb_add_owner(self, args: dict[str, Any]) -> Any:
        return self.add_owner(_ident(args), _decl(args))

    def verb_reload(self, args: dict[str, Any]) -> Any:
        return self.reload_owner(_ident(args), _decl(args), bool(args.get("policies", True)))

    def verb_remove_owner(self, args: dict[str, Any]) -> Any:
        return self.remove_owner(int(_ident(args)["pid"]), why="released ownership")

    def verb_shutdown(self, _args: dict[str, Any]) -> Any:
        self.stopper.begin_final_stop()
        return {"final": True}

    def verb_logs(self, args: dict[str, Any]) -> Any:
        return self.logs(str(args.get("name")), int(args.get("lines", 50)), args.get("since"))

    def verb_start(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.discard(d.name)
            if d.spec.schedule is not None:  # a job: one run now (docs/events.md, "Jobs")
                self.cron.run(d, "started by command", "start")
                continue
            if d.state not in RUNNING_STATES or (d.pid is None and d.launcher_pid is None):
                d.quick_deaths = 0
                if d.state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
                    d.set_state(State.STARTING, "started by command")
                self.starter.start(d)
        return self._commanded(names)

    def verb_stop(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.add(d.name)
            self.stopper.stop(d, then=functools.partial(self.leadership.drop, d.name, release=True))
        return self._commanded(names)

    def verb_restart(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        for d in names:
            self.held.discard(d.name)
            self.stopper.restart(d)
        return self._commanded(names)

    def verb_signal(self, args: dict[str, Any]) -> Any:
        names = self._names(args)
        sig = int(args.get("signal", 0))
        for d in names:
            if not self.stopper.send_signal(d, sig):
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

    # ------------------------------------------------------------------ what is reported
    def logs(self, name: str, lines: int, since: Any) -> dict[str, Any]:
        d = self.daemons.get(name)
        if d is None:
            raise CommandError(f"no daemon named {name!r}")
        path = self.starter.log_path(d.spec) if d.spec.log not in ("prefix", "raw") else None
        return report.log_lines(d, path, lines, since)

    def status(self) -> dict[str, Any]:
        # First: what each daemon waits on at the start gate (which brings its error up to date).
        waits = {name: self.starter.dependents.waiting_on(d) for name, d in self.daemons.items()}
        return {
            "supervisor": {
                "pid": self.os.getpid(),
                "owners": sorted(self.owners.by_pid),
                "started_at": self.about["started_at"],
                "respawns": self.about["respawns"],
                "version": __version__,
                "runtime_dir": self.about["runtime_dir"],
            },
            "daemons": [
                report.daemon_status(
                    d,
                    now=self.clock(),
                    held=d.name in self.held,
                    error=self._error(d),
                    leader=self.leadership.status(d.name),
                    waiting_on=waits[d.name],
                    job=self.cron.status(d),
                    stat=self.os.stat,
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
