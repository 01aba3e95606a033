"""For the supervisor's selector loop: timers (a heap, no periodic tick) and signals heard
through a wake-up fd (acted on in the loop, never in the handler)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import signal
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from attachdaemon_core.engine.daemon import ExitStatus
from attachdaemon_core.osproc.fds import pipe


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Callbacks due at monotonic times; ``timeout()`` tells select how long it may sleep."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock() + delay, callback)

    def timeout(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock())

    def run_due(self) -> None:
        now = self.clock()
        while self._heap and (self._heap[0][0] <= now or self._heap[0][2].cancelled):
            _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)


class SignalWake:
    """Signals the loop acts on: the handler only notes the signal, and the wake-up fd
    (``signal.set_wakeup_fd``) makes the selector return so the loop calls ``on_signal``."""

    def __init__(self, selector: selectors.BaseSelector, on_signal: Callable[[int], None]) -> None:
        self.selector = selector
        self.on_signal = on_signal
        self.fd = -1
        self.pending: list[int] = []

    def install(self, signals: Iterable[int]) -> None:
        self.fd, wake_w = pipe(nonblock=True)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, self._note)
        self.selector.register(self.fd, selectors.EVENT_READ, self._woken)

    def _note(self, signum: int, _frame: object) -> None:
        self.pending.append(signum)

    def _woken(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass
        pending, self.pending = self.pending, []
        for sig in pending:
            self.on_signal(sig)


class _Reaper(Protocol):
    def reap_one(self) -> tuple[int, int] | None: ...


def reap_children(
    os_seam: _Reaper,
    children: dict[int, Callable[[ExitStatus], None]],
    exit_status: dict[int, ExitStatus],
) -> None:
    """Reap every exited child: its callback gets how it ended; a pid nobody waits for yet keeps
    its status in ``exit_status`` (the last 1000), for the part that asks later."""
    while True:
        reaped = os_seam.reap_one()
        if reaped is None:
            return
        pid, status = reaped
        code = os.waitstatus_to_exitcode(status)
        ended = ExitStatus(code if code >= 0 else None, -code if code < 0 else None, time.time())
        callback = children.pop(pid, None)
        if callback is not None:
            callback(ended)
        else:
            exit_status[pid] = ended
            if len(exit_status) > 1000:
                exit_status.pop(next(iter(exit_status)))
