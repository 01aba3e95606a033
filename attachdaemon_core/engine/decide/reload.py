"""What a new set of declarations means for the running set: the reload diff.

``plan_reload`` compares the old specs with the new ones, given what each known daemon is doing,
and returns the actions in the order the supervisor carries them out: removals first, then each
declared daemon in declared order.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING

from attachdaemon_core.engine.states import State

if TYPE_CHECKING:
    from attachdaemon_core.engine.decide.views import ReloadSpec


class Seen:
    """What the plan needs of a known daemon: its state and whether it has a process. (Plain
    classes in decide/, not named tuples or dataclasses: cheaper on the supervisor's boot.)"""

    __slots__ = ("has_pid", "state")

    def __init__(self, state: State, has_pid: bool) -> None:
        self.state = state
        self.has_pid = has_pid


class Do:
    """The kinds of action (plain strings: no enum machinery to import on the supervisor's boot)."""

    FORGET = "forget"  # no longer declared: stop it (attached, leader) or leave it unsupervised
    ADD = "add"  # newly declared: create its record
    START = "start"
    RELEAD = "relead"  # its leader lock changed: stop, drop the old lock, start again
    RESTART = "restart"  # its command (identity) changed
    RELOAD_RESTART = "reload-restart"  # on_reload: restart (with reload_stop_signal)
    RELOAD_SIGNAL = "reload-signal"  # on_reload: signal (reload_signal)


class Action:
    __slots__ = ("do", "name")

    def __init__(self, do: str, name: str) -> None:
        self.do = do  # one of Do's
        self.name = name

    def __repr__(self) -> str:
        return f"Action({self.do!r}, {self.name!r})"


def plan_reload(
    old: Mapping[str, ReloadSpec],
    new: Sequence[ReloadSpec],
    states: Mapping[str, Seen],
    *,
    reload: bool,
    held: Container[str],
) -> list[Action]:
    """The actions that make the running set match ``new``.

    ``old`` maps the known daemons to their current specs, ``states`` tells what each does;
    ``reload`` is true for a server reload (on_reload policies apply), false for a refresh of the
    declarations; ``held`` names the daemons stopped by command (never started here)."""
    wanted = {s.name for s in new}
    actions = [Action(Do.FORGET, name) for name in old if name not in wanted]
    for spec in new:
        actions.extend(_for_spec(old.get(spec.name), spec, states.get(spec.name), reload, held))
    return actions


def _for_spec(
    old: ReloadSpec | None, spec: ReloadSpec, seen: Seen | None, reload: bool, held: Container[str]
) -> list[Action]:
    name = spec.name
    wants_start = spec.autostart and name not in held
    if old is None or seen is None:
        return [Action(Do.ADD, name)] + ([Action(Do.START, name)] if wants_start else [])
    if old.leader != spec.leader:
        return [Action(Do.RELEAD, name)]
    if spec.oneshot and old.oneshot:
        return _for_oneshot(spec, seen, reload, wants_start)
    if old.identity() != spec.identity():
        return [Action(Do.RESTART, name)]
    if not reload:
        return [Action(Do.START, name)] if seen.state == State.STOPPED and wants_start else []
    if seen.state not in (State.RUNNING, State.STARTING) or not seen.has_pid:
        return [Action(Do.START, name)] if seen.state in (State.STOPPED, State.EXITED) and wants_start else []
    if spec.on_reload == "restart":
        return [Action(Do.RELOAD_RESTART, name)]
    if spec.on_reload == "signal":
        return [Action(Do.RELOAD_SIGNAL, name)]
    return []


def _for_oneshot(spec: ReloadSpec, seen: Seen, reload: bool, wants_start: bool) -> list[Action]:
    """A one-shot runs once per server start: a run in progress finishes (with the command it
    started with); an ended one runs again on a reload only with ``rerun_on_reload``; one never
    run (``autostart`` turned on) starts."""
    if not wants_start:
        return []
    if seen.state == State.STOPPED:
        return [Action(Do.START, spec.name)]
    if reload and spec.rerun_on_reload and seen.state in (State.EXITED, State.FATAL):
        return [Action(Do.START, spec.name)]
    return []
