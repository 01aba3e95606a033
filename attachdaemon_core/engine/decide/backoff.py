"""The delay before a restart following quick deaths: the first restart is
immediate, then 0.1 s doubling, jittered by ±10 %, capped at the daemon's ``max_backoff``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attachdaemon_core.engine.decide.views import HasMaxBackoff


def backoff_delay(n: int, spec: HasMaxBackoff, rand: Callable[[], float] | None = None) -> float:
    """Delay before the restart following the n-th quick death in a row (docs/declarations.md, backoff)."""
    if n <= 1:
        return 0.0
    base = 0.1 * 2 ** (n - 2)
    if rand is None:  # imported at the first backoff, not on the supervisor's boot
        import random

        rand = random.random
    jittered = base * (0.9 + 0.2 * rand())
    return float(min(jittered, spec.max_backoff))
