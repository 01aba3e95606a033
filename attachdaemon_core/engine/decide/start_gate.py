"""The start gate: who is offered a start. A daemon starts only once every daemon it
``depends_on`` meets its condition (:mod:`.conditions`); until then it waits in ``starting``
with no process."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from attachdaemon_core.engine.states import State

if TYPE_CHECKING:
    from attachdaemon_core.engine.decide.views import DaemonView

D = TypeVar("D", bound="DaemonView")


def offer_start(d: DaemonView, *, held: Container[str]) -> bool:
    """Whether a daemon in ``starting`` with no process (waiting at the gate, or due a start) is
    offered a start again. Held (stopped by command) and stopping daemons are left alone."""
    return (
        d.state == State.STARTING
        and d.pid is None
        and d.launcher_pid is None
        and d.name not in held
        and not d.stopping
    )


def offered_starts(daemons: Iterable[D], *, held: Container[str]) -> Iterator[D]:
    """The daemons of ``daemons`` to offer a start, each checked (as :func:`offer_start` does)
    only when the iteration reaches it: starting one may start others, which are then skipped."""
    for d in daemons:
        if (
            d.state == State.STARTING
            and d.pid is None
            and d.launcher_pid is None
            and d.name not in held
            and not d.stopping
        ):
            yield d
