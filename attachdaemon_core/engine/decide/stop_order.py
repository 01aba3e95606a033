"""The final stop's order: every daemon in the wave stops in parallel, except that a daemon waits
while a daemon that depends on it is still in the wave (reverse ``depends_on`` order)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attachdaemon_core.engine.decide.views import DaemonView


class WaveStep:
    __slots__ = ("finished", "stop_now", "wave")

    def __init__(self, wave: set[str], stop_now: list[str], finished: bool) -> None:
        self.wave = wave  # what is still to stop (or still stopping)
        self.stop_now = stop_now  # send these their stop now
        self.finished = finished  # nothing left to stop and no stop in progress: the supervisor may exit


def step_wave(wave: Collection[str], daemons: Mapping[str, DaemonView]) -> WaveStep:
    """One step of the final stop.

    ``wave`` is what the final stop still has to end, ``daemons`` the declared daemons. A daemon
    leaves the wave once it has no process and no stop in progress (or is no longer declared);
    the stop is finished once the wave is empty and no stop at all is in progress."""
    left = set()
    for name in wave:
        d = daemons.get(name)
        if d is not None and (d.pid is not None or d.launcher_pid is not None or d.stopping):
            left.add(name)
    stop_now = [
        name
        for name in left
        if not daemons[name].stopping
        and not any(o != name and name in daemons[o].spec.depends_on for o in left)
    ]
    return WaveStep(left, stop_now, not left and not any(d.stopping for d in daemons.values()))
