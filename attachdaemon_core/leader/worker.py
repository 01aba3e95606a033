"""The lock holder's worker thread: makes the lock's blocking calls one at a time, in order.

The holder's main loop never blocks on the engine: it submits a call (see
:class:`attachdaemon_core.leader.roles.Submit`), keeps its deadlines, and learns of the result
when the worker's pipe turns readable. A hung call is broken with the lock's thread-safe
``abort()`` (the connection is lost).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import Any

from attachdaemon_core.leader.base import LeaderLock, Lease
from attachdaemon_core.leader.role_types import Op
from attachdaemon_core.osproc.fds import pipe

Result = tuple[Op, Any, BaseException | None]


class Worker:
    """One thread making the lock's blocking calls in order; results come back on a queue,
    with a byte on ``rfd`` to wake the loop."""

    def __init__(self, lock: LeaderLock):
        self.lock = lock
        self.requests: queue.SimpleQueue[tuple[Op, Lease | None] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.rfd, self.wfd = pipe(nonblock=True)
        self.thread = threading.Thread(target=self._run, name="leader-lock", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, op: Op, lease: Lease | None = None) -> None:
        self.requests.put((op, lease))

    def _run(self) -> None:
        while True:
            item = self.requests.get()
            if item is None:
                return
            op, lease = item
            result: Any = None
            error: BaseException | None = None
            try:
                call = getattr(self.lock, op.value)
                result = call(lease) if lease is not None else call()
            except Exception as exc:
                error = exc
            self.results.put((op, result, error))
            with contextlib.suppress(OSError):
                os.write(self.wfd, b"!")

    def drain(self) -> list[Result]:
        with contextlib.suppress(OSError):
            while os.read(self.rfd, 4096):
                pass
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                break
        return out

    def stop(self, timeout: float) -> None:
        self.requests.put(None)
        self.thread.join(timeout)
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
