"""The lock holder's side of its pipes to the parent (the protocol is in the docstring of
:mod:`attachdaemon_core.leader`): commands read into role-machine events, events written as
JSON lines without ever blocking the holder's loop.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import time
from collections.abc import Callable
from typing import Any

from attachdaemon_core.leader.role_types import (
    Event,
    Info,
    ReleaseRequested,
    Session,
    SessionStarted,
    SessionStopped,
    StatusRequested,
)

MAX_LINE = 65536
INFO_EVERY = 5.0  # seconds between repeated identical "info" events while following
ERROR_EVERY = 10.0


def parse_command(line: bytes) -> Event | str:
    """The event a command line from the parent means, or why it is ignored."""
    try:
        msg = json.loads(line)
        cmd = msg["cmd"]
    except (ValueError, KeyError, TypeError):
        return "malformed command; ignored"
    if cmd == "session":
        try:
            session = Session(int(msg["sid"]), int(msg["starttime"]), int(msg.get("stop_signal", 15)))
        except (KeyError, TypeError, ValueError):
            return "malformed session command; ignored"
        return SessionStarted(session)
    if cmd == "stopped":
        sid = msg.get("sid")
        if sid is not None and type(sid) is not int:
            return "malformed stopped command; ignored"
        return SessionStopped(sid)
    if cmd == "release":
        hold_off = msg.get("hold_off")
        try:
            hold_off = None if hold_off is None else float(hold_off)
        except (TypeError, ValueError):
            return "malformed release command; ignored"
        return ReleaseRequested(follow=bool(msg.get("follow", False)), hold_off=hold_off)
    if cmd == "status":
        return StatusRequested()
    return f"unknown command {str(cmd)[:40]!r}; ignored"


class Output:
    """Events to the parent, one JSON object a line, on a non-blocking fd: what the pipe does
    not take now is kept and written when ``fd`` turns writable (registered in ``sel`` with the
    data "out"); ``on_broken`` is called once the parent is gone (EPIPE)."""

    def __init__(
        self,
        fd: int,
        sel: selectors.BaseSelector,
        clock: Callable[[], float],
        on_broken: Callable[[], None],
    ):
        self.fd, self.sel, self.clock, self.on_broken = fd, sel, clock, on_broken
        self.buf = b""
        self.last_info: tuple[Any, ...] | None = None
        self.last_info_at = 0.0
        self.last_error: str | None = None
        self.last_error_at = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        self.buf += line.encode()
        if len(self.buf) > 4 * MAX_LINE and event == "info":
            return  # the parent is not reading: keep what matters, drop repeated info
        self.flush()

    def info(self, a: Info) -> None:
        """An "info" event, unless it repeats the last one within INFO_EVERY (and is not forced)."""
        key = (a.role, json.dumps(a.holder, sort_keys=True, default=str), a.token)
        now = self.clock()
        if a.force or key != self.last_info or now - self.last_info_at >= INFO_EVERY:
            self.last_info, self.last_info_at = key, now
            self.emit("info", role=a.role, holder=a.holder, token=a.token, **a.extra)

    def error(self, reason: str) -> None:
        """An "error" event, unless it repeats the last one within ERROR_EVERY."""
        now = self.clock()
        if reason != self.last_error or now - self.last_error_at >= ERROR_EVERY:
            self.last_error, self.last_error_at = reason, now
            self.emit("error", reason=reason)

    def flush(self) -> None:
        while self.buf:
            try:
                n = os.write(self.fd, self.buf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self.buf = b""
                    self.on_broken()
                    return
                raise
            self.buf = self.buf[n:]
        registered = self.fd in self.sel.get_map()
        if self.buf and not registered:
            self.sel.register(self.fd, selectors.EVENT_WRITE, "out")
        elif not self.buf and registered:
            self.sel.unregister(self.fd)

    def drain(self, timeout: float, poll: float) -> None:
        """Write what is left, blocking up to ``timeout`` seconds (at exit)."""
        end = time.monotonic() + timeout
        while self.buf and time.monotonic() < end:
            try:
                n = os.write(self.fd, self.buf)
                self.buf = self.buf[n:]
            except BlockingIOError:
                time.sleep(poll)
            except OSError:
                break
