"""Each ``ready = {notify = true}`` daemon's own NOTIFY_SOCKET (docs/declarations.md, "Readiness"):
an AF_UNIX datagram socket at ``<runtime>/notify/NAME.sock`` in the supervisor's selector, with
SO_PASSCRED, so a message counts only when its sender is the daemon or a process of its tree
(its session, or a descendant). READY=1, STATUS=, RELOADING=1, STOPPING=1 and WATCHDOG=1 are
acted on (``decide/notify.py``). A watchdog is one timer per daemon that declares
``watchdog_timeout``, armed when it is ready, re-armed only when it fires."""

from __future__ import annotations

import array
import contextlib
import logging
import os
import selectors
import socket
import struct
import sys
from collections.abc import Callable, Mapping

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.decide import notify as protocol
from attachdaemon_core.engine.limits import Limits
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.readiness import Prober
from attachdaemon_core.engine.states import State
from attachdaemon_core.osproc.layer import LIVE

log = logging.getLogger("attachdaemon")

SUN_PATH_MAX = 107  # bytes of sun_path, less its NUL
_UCRED = struct.Struct("3i")  # pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(16 * 4)  # sd_notify's barrier fd
MAX_DATAGRAM = 4096
MAX_PER_WAKE = 64  # datagrams read per wake-up: one chatty daemon never starves the loop


class _Watchdog:
    __slots__ = ("last", "pid", "timer")

    def __init__(self, pid: int, last: float, timer: Timer) -> None:
        self.pid = pid
        self.last = last
        self.timer = timer


class Notifier:
    """The notify sockets of the daemons; a watchdog restart goes through ``limits``."""

    def __init__(
        self, limits: Limits, prober: Prober, selector: selectors.BaseSelector, runtime_dir: str
    ) -> None:
        self.daemons: Mapping[str, Daemon] = limits.daemons  # (the limits' daemons and timers)
        self.timers: Timers = limits.timers
        self.dir = os.path.join(runtime_dir, "notify")
        self.selector = selector
        self.on_ready: Callable[[Daemon], None] = prober.report_ready  # READY=1 (again)
        self.restart_because: Callable[[Daemon, str, str], None] = limits.restart_because
        self.socks: dict[str, socket.socket] = {}
        self.watchdogs: dict[str, _Watchdog] = {}
        self.refused = 0  # messages from a process outside the daemon's tree

    def path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.sock")

    def env_for(self, d: Daemon) -> dict[str, str]:
        """The variables a notify daemon is started with: NOTIFY_SOCKET (its socket, bound now if
        it was not), and WATCHDOG_USEC with a watchdog. Empty for other daemons."""
        probe = d.spec.ready
        if probe is None or not probe.notify:
            return {}
        path = self._listen(d.name)
        env = {"NOTIFY_SOCKET": path}
        if d.spec.watchdog_timeout is not None:
            env["WATCHDOG_USEC"] = str(int(d.spec.watchdog_timeout * 1_000_000))
        return env

    def _listen(self, name: str) -> str:
        path = self.path(name)
        if name in self.socks:
            return path
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise OSError(f"the notify socket path {path} is longer than {SUN_PATH_MAX} bytes")
        if not hasattr(socket, "SO_PASSCRED"):  # fail closed: without it no message has a sender
            raise OSError(
                f"ready = {{notify = true}} needs the sender of each message (SO_PASSCRED, Linux), "
                f"which {sys.platform} does not give; declare another readiness check (tcp, http, "
                "command, postgres or log) for this daemon"
            )
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a previous supervisor's (ours: this directory is ours alone)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # (close-on-exec: PEP 446)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        self.socks[name] = sock
        self.selector.register(sock, selectors.EVENT_READ, lambda _m: self._read(name, sock))
        return path

    def declarations_changed(self) -> None:
        """Close the sockets of daemons that are gone or no longer use notify."""
        for name in list(self.socks):
            d = self.daemons.get(name)
            if d is None or d.spec.ready is None or not d.spec.ready.notify:
                self._close(name)
        for name in list(self.watchdogs):
            d = self.daemons.get(name)
            if d is None or d.spec.watchdog_timeout is None:
                self.watchdogs.pop(name).timer.cancel()

    def _close(self, name: str) -> None:
        sock = self.socks.pop(name)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path(name))

    def close_all(self) -> None:
        for name in list(self.socks):
            self._close(name)
        for watch in self.watchdogs.values():
            watch.timer.cancel()
        self.watchdogs.clear()

    # ------------------------------------------------------------------ messages
    def _read(self, name: str, sock: socket.socket) -> None:
        for _ in range(MAX_PER_WAKE):
            try:
                data, ancillary, _flags, _addr = sock.recvmsg(MAX_DATAGRAM, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sender = _sender(ancillary)  # (and closes any fd passed: sd_notify's barrier)
            d = self.daemons.get(name)
            if d is None or sender is None or not _in_tree(sender, d):
                self.refused += 1
                if self.refused <= 10 or self.refused % 1000 == 0:
                    log.warning(
                        "daemon %r: a notify message from pid %s, not a process of the daemon, ignored",
                        name,
                        sender,
                    )
                continue
            self._apply(d, protocol.parse(data))

    def _apply(self, d: Daemon, msg: protocol.Message) -> None:
        if msg.status is not None:
            d.status_text = msg.status
        before = protocol.Phase(d.ready, d.phase)
        after = protocol.after(before, msg)
        d.phase = after.phase
        if msg.reloading and after.phase == "reloading" and before.phase != "reloading":
            log.info("daemon %r is reloading (RELOADING=1)", d.name)
            d.ready = False
        if msg.stopping and before.phase != "stopping":
            log.info("daemon %r is stopping (STOPPING=1)", d.name)
            d.ready = False
        if after.ready and not before.ready:
            self.on_ready(d)  # logs "is ready", starts what waited for it
        if msg.watchdog_usec is not None:
            log.info("daemon %r set its watchdog to %gs", d.name, msg.watchdog_usec / 1e6)
        if msg.watchdog == "trigger":
            self.restart_because(d, "watchdog", "watchdog: the daemon asked for a restart (WATCHDOG=trigger)")
        elif msg.ready or msg.watchdog == "ping":
            self._ping(d, msg.watchdog_usec)

    # ------------------------------------------------------------------ watchdog
    def _ping(self, d: Daemon, usec: int | None) -> None:
        if d.spec.watchdog_timeout is None or d.pid is None:
            return  # WATCHDOG_USEC= alone never turns a watchdog on: it is declared or absent
        timeout = usec / 1e6 if usec is not None else d.spec.watchdog_timeout
        now = self.timers.clock()
        watch = self.watchdogs.get(d.name)
        if watch is not None and watch.pid == d.pid and usec is None:
            watch.last = now  # the timer, already armed, looks at this when it fires
            return
        if watch is not None:
            watch.timer.cancel()
        pid = d.pid
        timer = self.timers.call_later(timeout, lambda: self._watchdog_fired(d, pid, timeout))
        self.watchdogs[d.name] = _Watchdog(pid, now, timer)

    def _watchdog_fired(self, d: Daemon, pid: int, timeout: float) -> None:
        watch = self.watchdogs.get(d.name)
        if watch is None or watch.pid != pid:
            return
        if d.pid != pid or d.state != State.RUNNING or d.stopping or d.phase == "stopping":
            del self.watchdogs[d.name]
            return
        left = protocol.watchdog_left(watch.last, timeout, self.timers.clock())
        if left > 0:
            watch.timer = self.timers.call_later(left, lambda: self._watchdog_fired(d, pid, timeout))
            return
        del self.watchdogs[d.name]
        detail = f"watchdog: no WATCHDOG=1 for {timeout:g}s"
        self.restart_because(d, "watchdog", detail)


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's pid from SCM_CREDENTIALS; every descriptor passed along is closed."""
    pid = None
    credentials = getattr(socket, "SCM_CREDENTIALS", None)  # (Linux; other platforms never listen)
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == credentials and len(data) >= _UCRED.size:
            pid = _UCRED.unpack_from(data)[0]
        elif kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
    return pid


def _in_tree(pid: int, d: Daemon) -> bool:
    """Whether ``pid`` is the daemon, in its session, or one of its descendants (now)."""
    if d.pid is None or pid <= 1:
        return False
    if pid == d.pid:
        return True
    root = LIVE.stat(d.pid)
    sender = LIVE.stat(pid)
    if root is None or sender is None:
        return False
    if sender.sid == root.sid and root.sid == root.pid:  # a session the daemon leads: all its own
        return True
    return LIVE.descends_from(pid, d.pid)
