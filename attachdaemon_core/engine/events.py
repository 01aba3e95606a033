"""The supervisor's event stream (docs/monitoring.md, "The event stream"): what happened, in order.

Every event is one JSON object with a sequence number that grows by one per event for the
life of the supervisor process: ``{"seq": 7, "at": 1796395681.2, "event": "exited", "daemon":
"kv", "pid": 4242, "code": 1, "signal": null, "status": "exited with status 1"}``. The last
:data:`RING_SIZE` events are kept in memory, so a client that reconnects asks for those after
the last number it saw (``events --after N``); listeners (``events -f`` connections) are told
of each new event as it is recorded. Nothing here runs unless an event happens: no timer.

Runs in the supervisor process.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "RING_SIZE", "EventLog", "Listener"]

log = logging.getLogger("attachdaemon")

RING_SIZE = 1000  # events kept for clients that come back (docs/monitoring.md)

# Every event name, in the order docs/monitoring.md's table lists them.
EVENTS = (
    "started",
    "start-failed",
    "exited",
    "restarting",
    "ready",
    "fatal",
    "stopped",
    "leader-acquired",
    "leader-lost",
)

Listener = Callable[[dict[str, Any]], None]


class EventLog:
    """The ring of recent events and the listeners told of each new one."""

    def __init__(self, size: int = RING_SIZE, *, wall: Callable[[], float] = time.time) -> None:
        self.ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self.seq = 0
        self.wall = wall
        self.listeners: list[Listener] = []

    def emit(self, event: str, daemon: str | None = None, **fields: Any) -> dict[str, Any]:
        """Record one event and tell every listener; a listener that fails is dropped."""
        self.seq += 1
        record: dict[str, Any] = {"seq": self.seq, "at": round(self.wall(), 6), "event": event}
        if daemon is not None:
            record["daemon"] = daemon
        record.update(fields)
        self.ring.append(record)
        for listener in list(self.listeners):
            try:
                listener(record)
            except Exception:  # a listener's bug must not stop the supervisor's work
                log.exception("event listener failed; dropping it")
                self.unsubscribe(listener)
        return record

    @property
    def first(self) -> int:
        """The oldest sequence number still kept (``seq + 1`` when none is)."""
        return self.ring[0]["seq"] if self.ring else self.seq + 1

    def since(self, after: int) -> dict[str, Any]:
        """The events after ``after`` still kept, and how many of those were already dropped
        (``missed``). ``after`` beyond the last number is a client of an earlier supervisor
        process (numbers start again at 1 in each): it gets every event kept, ``restarted``."""
        restarted = after > self.seq
        if restarted or after < 0:
            after = 0
        missed = max(0, self.first - 1 - after)
        events = [e for e in self.ring if e["seq"] > after]
        return {
            "seq": self.seq,
            "first": self.first,
            "missed": missed,
            "restarted": restarted,
            "events": events,
        }

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` of every event from now on; returns what ends that."""
        self.listeners.append(listener)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
