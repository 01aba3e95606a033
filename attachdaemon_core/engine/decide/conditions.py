"""The conditions of ``depends_on`` (``ready``, ``started``, ``completed``): which of a daemon's
dependencies hold it at the start gate and why, and which dependents follow a dependency that
goes down (``restart = true``). Pure: the supervisor acts on what these return, and the status
shows :func:`waiting_text` (docs/declarations.md, "Dependencies").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from attachdaemon_core.engine.states import RUNNING_STATES, State

if TYPE_CHECKING:
    from attachdaemon_core.engine.decide.views import DaemonView, Requirement


class Unmet:
    """One dependency a daemon waits on: its name, the condition awaited, why (shown in status),
    and whether it ``failed`` (a one-shot that failed, a fatal daemon: only a command changes it)."""

    __slots__ = ("condition", "failed", "name", "why")

    def __init__(self, name: str, condition: str, why: str, *, failed: bool = False) -> None:
        self.name = name
        self.condition = condition
        self.why = why
        self.failed = failed

    def __repr__(self) -> str:
        return f"Unmet({self.name!r}, {self.condition!r}, {self.why!r}, failed={self.failed})"

    def as_status(self) -> dict[str, object]:
        """Its entry in the status JSON's ``waiting_on`` (docs/status-json.md)."""
        return {"name": self.name, "condition": self.condition, "failed": self.failed, "why": self.why}


def completed(d: DaemonView) -> bool:
    """Its last run ended with status 0 and it rests (a one-shot done, or ``restart`` left it)."""
    return d.state == State.EXITED and d.last_exit is not None and d.last_exit.success


def met(req: Requirement, d: DaemonView | None) -> bool:
    """Whether ``d`` meets the condition. For a one-shot, ``ready`` means completed: a one-shot
    is ready once it did its work. ``started``: it runs, or its run already ended (exited)."""
    if d is None:
        return False
    condition = condition_of(req, d)
    if condition == "completed":
        return completed(d)
    if condition == "started":
        return (d.state == State.RUNNING and d.pid is not None) or d.state == State.EXITED
    return d.state == State.RUNNING and d.ready is True


def unmet(requirements: Iterable[Requirement], daemons: Mapping[str, DaemonView]) -> list[Unmet]:
    """The dependencies (in declared order) not meeting their condition, each with why."""
    return [_why(r, daemons.get(r.name)) for r in requirements if not met(r, daemons.get(r.name))]


def _why(req: Requirement, d: DaemonView | None) -> Unmet:
    if d is None:
        return Unmet(req.name, req.condition, f"{req.name!r} (not declared)")
    condition = condition_of(req, d)
    if d.state in (State.EXITED, State.FATAL):  # it rests until a command starts it again
        what = "one-shot" if d.spec.oneshot else "daemon"
        last = d.last_exit
        if last is not None and not last.success:
            why = f"{what} {req.name!r} failed: it {last.describe()}"
        elif d.state == State.FATAL:
            why = f"{what} {req.name!r} is fatal"
        else:
            why = f"{what} {req.name!r} ended" + (f": it {last.describe()}" if last else "")
        return Unmet(req.name, condition, why, failed=True)
    if d.state == State.RUNNING or (d.state == State.STARTING and d.pid is not None):
        goal = {"completed": "to complete", "started": "to start"}.get(condition, "to be ready")
        return Unmet(req.name, condition, f"{req.name!r} {goal}")
    return Unmet(req.name, condition, f"{req.name!r} ({d.state.value})")


def waiting_text(waits: Iterable[Unmet]) -> str | None:
    """What status and the log say: the failures first, then the dependencies still awaited."""
    waits = list(waits)
    failed = [w.why for w in waits if w.failed]
    pending = [w.why for w in waits if not w.failed]
    parts = []
    if failed:
        parts.append("not starting: " + "; ".join(failed))
    if pending:
        parts.append("waiting on " + ", ".join(pending))
    return "; ".join(parts) or None


def condition_of(req: Requirement, d: DaemonView) -> str:
    """The condition as it applies to ``d``: ``ready`` on a one-shot means ``completed``."""
    return "completed" if req.condition == "ready" and d.spec.oneshot else req.condition


# The states in which a dependency can meet each condition: leaving them is going down.
_HOLDS = {
    "ready": frozenset({State.RUNNING}),
    "started": frozenset({State.RUNNING, State.EXITED}),
    "completed": frozenset({State.EXITED}),
}


def went_down(condition: str, old: State, new: State) -> bool:
    """Whether a dependency's change from ``old`` to ``new`` takes away what ``condition``
    waited for: a run that ends (``ready``, ``started``), or a new run of what had completed."""
    holds = _HOLDS.get(condition, _HOLDS["ready"])
    return old in holds and new not in holds


def followers(dep: DaemonView, old: State, new: State, daemons: Iterable[DaemonView]) -> list[str]:
    """The dependents declared with ``restart = true`` on ``dep`` that must follow its change
    from ``old`` to ``new``: those that have a process and are not stopping already. They stop
    now and start again once ``dep`` meets their condition again (docker compose's restart: true)."""
    found = []
    for d in daemons:
        if d.name == dep.name or d.stopping or d.state not in RUNNING_STATES:
            continue
        if d.pid is None and d.launcher_pid is None:
            continue  # waiting at the gate already, or not started
        for req in d.spec.requirements():
            if req.name == dep.name and req.restart and went_down(condition_of(req, dep), old, new):
                found.append(d.name)
                break
    return found
