"""The supervisor's side of leader election (docs/events.md): one lock-holder process per ``leader``
daemon, spoken to in JSON lines (see :mod:`attachdaemon_core.leader` for the protocol).

Runs in the supervisor's loop. The holder owns the lease and the daemon's deadline; this side
starts the daemon when the holder says ``acquired``, tells it each new session at once, stops the
daemon when it says ``lost``, and reports the lock's holder and this host's role in status.

A holder that dies (a missing client package, a crash, a kill) is reported in status (the
daemon's ``error``) and the log with its exit status, what it last said and its last stderr
lines, and started again with backoff: 1 s after a first quick death, doubling up to 30 s.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import selectors
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.osproc.fds import pipe
from attachdaemon_core.osproc.spawn import SpawnError, SpawnRequest

log = logging.getLogger("attachdaemon")

BACKEND_ENV = "ATTACHDAEMON_INTERNAL_LEADER_BACKEND"
HOLDER_RESTART_DELAY = 1.0  # after a first quick death; doubled at each quick death in a row
HOLDER_MAX_DELAY = 30.0
HOLDER_STABLE = 10.0  # a holder that lived this long died once, not in a loop
STDERR_TAIL = 5  # stderr lines kept per holder, for the report of its death
MAX_LINE = 65536


@dataclass
class Link:
    """One holder process and what it last said."""

    name: str
    lock: str
    pid: int
    to_holder: int
    from_holder: int
    buf: bytes = b""
    role: str = "unknown"
    holder: dict[str, Any] | None = None
    token: int | None = None
    error: str | None = None
    leading: bool = False
    sid: int | None = None
    d_stop: float = 0.0  # monotonic: start nothing after this unless a renewal moves it
    expiry: Timer | None = None
    closing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    backend: str = ""  # masked out of what the holder writes
    started: float = 0.0  # monotonic
    from_stderr: int = -1
    err_buf: bytes = b""
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL))
    last_error: str | None = None  # its last "error" event, even once a later event cleared it


@dataclass
class Restarts:
    """A daemon's holder deaths: how many quick ones in a row, the last one's report (shown in
    status until a new holder works), and the restart waiting for its backoff."""

    quick_deaths: int = 0
    report: str | None = None
    timer: Timer | None = None


class Leadership:
    """Holder processes for the supervisor's ``leader`` daemons."""

    def __init__(
        self,
        selector: selectors.BaseSelector,
        timers: Timers,
        *,
        os: RealOS,
        children: dict[int, Callable[[ExitStatus], None]],
        on_acquired: Callable[[str], None],
        on_lost: Callable[[str, str], None],
        wanted: Callable[[str], bool],
    ) -> None:
        self.selector = selector
        self.timers = timers
        self.os = os  # a holder is started through the OS seam
        self.children = children
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.wanted = wanted
        self.links: dict[str, Link] = {}
        self.restarts: dict[str, Restarts] = {}

    # -- lifecycle of holders
    def ensure(self, d: Daemon) -> None:
        """Start ``d``'s holder if it has none (the daemon waits on standby until it leads),
        unless a restart after a holder's death is waiting for its backoff."""
        leader = d.spec.leader
        if leader is None or d.name in self.links:
            return
        restarts = self.restarts.get(d.name)
        if restarts is not None and restarts.timer is not None:
            return
        info = {"host": socket.gethostname(), "pid": self.os.getpid(), "daemon": d.name}
        argv = (
            sys.executable, "-m", "attachdaemon_core.leader", "hold",
            "--name", leader.lock,
            "--lease", repr(leader.lease),
            "--renew", repr(leader.renew),
            "--stop-timeout", repr(d.spec.stop_timeout),
            "--info", json.dumps(info),
        )  # fmt: skip
        env = dict(os.environ)
        env[BACKEND_ENV] = leader.backend  # never on the command line: it may hold a password
        cmd_r, cmd_w = pipe()
        ev_r, ev_w = pipe()
        err_r, err_w = pipe()
        try:
            req = SpawnRequest(argv=argv, env=env, stdin_fd=cmd_r, stdout_fd=ev_w, stderr_fd=err_w)
            pid = self.os.spawn(req)
        except SpawnError as exc:
            for fd in (cmd_r, cmd_w, ev_r, ev_w, err_r, err_w):
                os.close(fd)
            self._restart_later(d, leader.lock, f"cannot start its lock holder: {exc}")
            return
        for fd in (cmd_r, ev_w, err_w):
            os.close(fd)
        os.set_blocking(ev_r, False)
        os.set_blocking(err_r, False)
        link = Link(d.name, leader.lock, pid, cmd_w, ev_r, backend=leader.backend, from_stderr=err_r)
        link.started = self.timers.clock()
        self.links[d.name] = link
        self.children[pid] = functools.partial(self._holder_exited, d, link)
        self.selector.register(ev_r, selectors.EVENT_READ, lambda _m, link=link: self._read(link))
        # Read until EOF, also after the holder's death (its watchdog may write last).
        self.selector.register(err_r, selectors.EVENT_READ, lambda _m, link=link: self._read_stderr(link))
        log.info("daemon %r waits for leader lock %r (holder pid %d)", d.name, leader.lock, pid)

    def _retry(self, d: Daemon) -> None:
        restarts = self.restarts.get(d.name)
        if restarts is not None:
            restarts.timer = None
        if self.wanted(d.name):
            self.ensure(d)

    def _restart_later(self, d: Daemon, lock: str, what: str, *, lived: float = 0.0) -> str:
        """Record a holder's death (or failed start), log it, and start a new holder after the
        backoff; returns the report (also the daemon's error in status)."""
        restarts = self.restarts.setdefault(d.name, Restarts())
        restarts.quick_deaths = 1 if lived >= HOLDER_STABLE else restarts.quick_deaths + 1
        delay = min(HOLDER_RESTART_DELAY * 2 ** (restarts.quick_deaths - 1), HOLDER_MAX_DELAY)
        again = f" ({restarts.quick_deaths} quick deaths in a row)" if restarts.quick_deaths > 1 else ""
        restarts.report = f"leader lock {lock!r}: {what}; a new holder starts in {delay:g}s{again}"
        log.error("daemon %r: %s; a new holder starts in %gs%s", d.name, what, delay, again)
        if restarts.timer is not None:
            restarts.timer.cancel()
        restarts.timer = self.timers.call_later(delay, lambda: self._retry(d))
        return restarts.report

    def drop(self, name: str, *, release: bool) -> None:
        """Forget ``name``'s holder: ask it to release (the daemon is already stopped) or just
        close its pipe (EOF: it empties the session it knows, releases and exits)."""
        restarts = self.restarts.pop(name, None)
        if restarts is not None and restarts.timer is not None:
            restarts.timer.cancel()
        link = self.links.pop(name, None)
        if link is None:
            return
        link.closing = True
        if release:
            self._send(link, {"cmd": "release"})
        self._close(link)

    def drop_all(self) -> None:
        for name in list(self.links):
            self.drop(name, release=True)

    # -- what the supervisor tells the holder
    def is_leading(self, name: str) -> bool:
        """We hold the lock and its lease is good for a whole start: before d_stop."""
        link = self.links.get(name)
        return link is not None and link.leading and self.timers.clock() < link.d_stop

    def session(self, d: Daemon, sid: int, starttime: int) -> None:
        link = self.links.get(d.name)
        if link is not None and link.leading:
            link.sid = sid
            self._send(link, {"cmd": "session", "sid": sid, "starttime": starttime,
                              "stop_signal": d.spec.stop_signal})  # fmt: skip

    def stopped(self, name: str) -> None:
        link = self.links.get(name)
        if link is not None and link.sid is not None:
            self._send(link, {"cmd": "stopped", "sid": link.sid})
            link.sid = None

    def token(self, name: str) -> int | None:
        link = self.links.get(name)
        return link.token if link is not None and link.leading else None

    def status(self, name: str) -> dict[str, Any] | None:
        link = self.links.get(name)
        if link is None:
            return None
        holder = link.holder
        shown = f"{holder.get('host')}:{holder.get('pid')}" if holder else None
        return {"lock": link.lock, "role": link.role, "holder": shown, "token": link.token}

    def error(self, name: str) -> str | None:
        """What the holder reports wrong now, else how the last holder died (until one works)."""
        link = self.links.get(name)
        if link is not None and link.error:
            return link.error
        restarts = self.restarts.get(name)
        return restarts.report if restarts is not None else None

    def _works(self, link: Link) -> None:
        """The holder follows or leads: an earlier holder's death is no longer the news."""
        restarts = self.restarts.get(link.name)
        if restarts is not None and self.links.get(link.name) is link:
            restarts.report = None

    # -- the holder's events
    def _read(self, link: Link, *, last_words: bool = False) -> None:
        """Events from the holder. ``last_words``: it is dead; take only what it said was wrong."""
        if link.from_holder < 0:
            return
        got = self._lines(link.from_holder, link.buf)
        if got is None:
            return
        lines, link.buf, _ended = got
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if not last_words:
                self._event(link, event)
            elif event.get("event") == "error":
                link.last_error = str(event.get("reason"))

    def _read_stderr(self, link: Link, *, drain: bool = False) -> None:
        """The holder's stderr: each line logged (passwords masked) and the last ones kept."""
        while link.from_stderr >= 0:
            got = self._lines(link.from_stderr, link.err_buf)
            if got is None:
                return
            lines, link.err_buf, ended = got
            if ended:
                os.close(link.from_stderr)
                link.from_stderr = -1
                lines.append(link.err_buf)  # a last line without its newline
                link.err_buf = b""
            for raw in lines:
                self._stderr_line(link, raw)
            if not drain:
                return

    def _lines(self, fd: int, buf: bytes) -> tuple[list[bytes], bytes, bool] | None:
        """One read from a holder's non-blocking pipe ``fd``, after ``buf``: its complete lines (a
        line over MAX_LINE counts as one), what is left, and whether the pipe ended (then it has
        left the selector); None when nothing is ready."""
        try:
            chunk = os.read(fd, MAX_LINE)
        except BlockingIOError:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
            return [], buf, True
        *lines, rest = (buf + chunk).split(b"\n")
        if len(rest) > MAX_LINE:
            lines.append(rest)
            rest = b""
        return lines, rest, False

    def _stderr_line(self, link: Link, raw: bytes) -> None:
        from attachdaemon_core.spec.redaction import redact

        text = redact(raw.decode("utf-8", "replace").rstrip(), link.backend)[:300]
        if text.strip():
            link.stderr.append(text)
            log.warning("daemon %r: lock holder (pid %d): %s", link.name, link.pid, text)

    def _event(self, link: Link, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind in ("acquired", "renewed"):
            self._extend(link, event)
        if kind == "acquired":
            link.leading, link.role, link.error = True, "leader", None
            self._works(link)
            link.token = event.get("token")
            log.info(
                "daemon %r: this host now holds leader lock %r (token %s)", link.name, link.lock, link.token
            )
            self.on_acquired(link.name)
        elif kind == "lost":
            was = link.leading
            link.leading, link.role = False, "follower"
            self._cancel_expiry(link)
            if was:
                log.warning("daemon %r: lost leader lock %r (%s); stopping it", link.name, link.lock,
                            event.get("reason"))  # fmt: skip
                self.on_lost(link.name, str(event.get("reason")))
        elif kind == "info":
            if not link.leading:
                link.role = str(event.get("role", "unknown"))
            link.holder = event.get("holder") if isinstance(event.get("holder"), dict) else None
            if link.role == "follower":
                link.error = None
            if link.role in ("follower", "leader"):
                self._works(link)
        elif kind == "error":
            link.error = f"leader lock {link.lock!r}: {event.get('reason')}"
            link.last_error = str(event.get("reason"))
            link.role = "unknown"

    def _holder_exited(self, d: Daemon, link: Link, status: ExitStatus) -> None:
        self._read(link, last_words=True)  # still in the pipes: what it said, what it wrote
        self._read_stderr(link, drain=True)
        self._close(link)
        if self.links.get(d.name) is not link:
            return  # dropped on purpose
        del self.links[d.name]
        what = f"its lock holder (pid {link.pid}) {status.describe()}"
        if link.last_error:
            what += f": {link.last_error}"
        said = link.last_error
        tail = [line for line in link.stderr if not (said and said in line)]  # not twice
        if tail:
            what += "; its last stderr lines: " + " | ".join(tail)
        if link.leading:
            what += "; stopping the daemon"
        report = self._restart_later(d, link.lock, what, lived=self.timers.clock() - link.started)
        if link.leading:
            self.on_lost(d.name, report)

    def _extend(self, link: Link, event: dict[str, Any]) -> None:
        """A (re)newed lease: remember until when a start is safe, and stop the daemon ourselves
        at that point if no fresher renewal arrived (the holder may be frozen: its watchdog kills
        by d_kill, but only the sessions it was told of)."""
        d_stop = event.get("d_stop")
        if not isinstance(d_stop, (int, float)):
            return
        link.d_stop = float(d_stop)
        self._cancel_expiry(link)
        link.expiry = self.timers.call_at(link.d_stop, lambda: self._expired(link))

    def _expired(self, link: Link) -> None:
        link.expiry = None
        if self.links.get(link.name) is not link or not link.leading:
            return
        link.leading, link.role = False, "unknown"
        log.warning("daemon %r: no renewal of leader lock %r in time (its holder is silent); stopping it",
                    link.name, link.lock)  # fmt: skip
        self.on_lost(link.name, "lease not renewed in time (the lock holder did not answer)")

    def _cancel_expiry(self, link: Link) -> None:
        if link.expiry is not None:
            link.expiry.cancel()
            link.expiry = None

    # -- plumbing
    def _send(self, link: Link, message: dict[str, Any]) -> None:
        if link.to_holder < 0:
            return
        try:
            os.write(link.to_holder, (json.dumps(message) + "\n").encode())
        except OSError:
            pass  # it is gone; its exit is handled when it is reaped

    def _close(self, link: Link) -> None:
        self._cancel_expiry(link)
        if link.to_holder >= 0:
            os.close(link.to_holder)
            link.to_holder = -1
        if link.from_holder >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(link.from_holder)
            os.close(link.from_holder)
            link.from_holder = -1
