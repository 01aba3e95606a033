"""What one sd_notify datagram says (docs/declarations.md, "Readiness"): the protocol of
systemd's sd_notify(3), newline-separated ``KEY=VALUE`` assignments. Pure: the notify socket
hands the bytes and the supervisor acts on the :class:`Message` returned."""

from __future__ import annotations

from typing import NamedTuple

MAX_STATUS = 200  # characters of STATUS= kept for status (a daemon's own text, shown to readers)


class Message:
    """The assignments of one datagram that the supervisor acts on; the rest are ignored
    (MAINPID=, FDSTORE=, EXTEND_TIMEOUT_USEC=…: a daemon here cannot move its pid or store fds)."""

    __slots__ = ("errno", "ready", "reloading", "status", "stopping", "watchdog", "watchdog_usec")

    def __init__(self) -> None:
        self.ready = False
        self.reloading = False
        self.stopping = False
        self.status: str | None = None
        self.watchdog: str | None = None  # "ping" (WATCHDOG=1) or "trigger" (WATCHDOG=trigger)
        self.watchdog_usec: int | None = None  # WATCHDOG_USEC=: a new timeout, microseconds
        self.errno: int | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, k) not in (False, None) for k in self.__slots__)


def parse(data: bytes) -> Message:
    """A datagram's assignments; malformed lines (no ``=``, not UTF-8) are skipped."""
    msg = Message()
    for raw in data.split(b"\n"):
        key, sep, value = raw.decode("utf-8", "replace").partition("=")
        if not sep:
            continue
        if key == "READY" and value == "1":
            msg.ready = True
        elif key == "RELOADING" and value == "1":
            msg.reloading = True
        elif key == "STOPPING" and value == "1":
            msg.stopping = True
        elif key == "STATUS":
            msg.status = "".join(c if c.isprintable() else " " for c in value)[:MAX_STATUS]
        elif key == "WATCHDOG" and value in ("1", "trigger"):
            msg.watchdog = "ping" if value == "1" else "trigger"
        elif key == "WATCHDOG_USEC" and value.isascii() and value.isdigit() and int(value) > 0:
            msg.watchdog_usec = int(value)
        elif key == "ERRNO" and value.isascii() and value.isdigit():
            msg.errno = int(value)
    return msg


class Phase(NamedTuple):
    """The daemon's own account of itself after a message: ready, and what it is doing."""

    ready: bool | None
    phase: str | None  # "reloading", "stopping" or None


def after(current: Phase, msg: Message) -> Phase:
    """The phase after ``msg``. RELOADING=1 makes it not ready until READY=1 comes again;
    STOPPING=1 stays until the daemon exits; READY=1 in the same message as RELOADING=1 wins
    (the reload is already over, as systemd reads it)."""
    phase = current.phase
    if msg.stopping:
        return Phase(False, "stopping")
    if phase == "stopping":
        return current
    if msg.reloading and not msg.ready:
        return Phase(False, "reloading")
    if msg.ready:
        return Phase(True, None)
    return current


def watchdog_left(last_ping: float, timeout: float, now: float) -> float:
    """Seconds before a daemon that last pinged at ``last_ping`` misses its watchdog; <= 0: missed."""
    return last_ping + timeout - now
