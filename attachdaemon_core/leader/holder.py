"""The lock-holder process: holds one leader lock and owns the leader daemon's deadline.

Started by the supervisor as ``python -m attachdaemon_core.leader hold …`` (see ``__main__``),
it talks JSON lines with its parent on fd 0 (commands) and fd 1 (events); see the module
``attachdaemon_core.leader`` for the wire protocol. Every decision is made by the pure role
machine (:mod:`attachdaemon_core.leader.roles`); this module turns what happens into its events
and carries out its actions.

Threads and timing. The main thread runs a ``selectors`` loop over the parent's pipe, a wake-up
pipe, the watchdog socket and (PostgreSQL) the lock connection's socket; it owns every
deadline, signals the daemon's session and never calls the engine. One worker thread makes
the blocking engine calls (acquire, renew, release, holder) one at a time and posts results
back. So a hung client call can never postpone D_stop: the main loop stops the daemon at
D_stop = t_s + lease - stop_timeout - margin and has its session empty by
D_kill = t_s + lease - margin (t_s = monotonic time the last ACKNOWLEDGED renewal was SENT),
then aborts the hung call (socket shutdown) and releases best-effort. The holder never forks
after the thread starts except through ``subprocess`` (fork+exec) to restart the watchdog.

Second line of defence: the watchdog child (its own session, see ``watchdog.py``) gets the
session and every new deadline, and empties the session at D_kill itself, so the rule still
holds while the holder is SIGSTOPped; it also keeps the lock's fd open, so a SIGKILLed holder's
PostgreSQL or file lock is freed only once the session is empty. They talk over a stream socket
pair (``channel.py``); EOF on it means the watchdog died, and a watchdog that stops reading
(its socket buffer full) counts as dead too: either way it is restarted and sent the state again.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.leader import watchdog
from attachdaemon_core.leader.base import LeaderLock, Lease
from attachdaemon_core.leader.channel import Channel
from attachdaemon_core.leader.role_types import (
    POLL,
    Abort,
    AcquireDone,
    Announce,
    CheckSession,
    Config,
    Emit,
    Error,
    Event,
    HolderDone,
    Info,
    KillSession,
    Op,
    ParentGone,
    ReleaseDone,
    RenewDone,
    Role,
    ServerSpoke,
    SessionGone,
    SignalSession,
    State,
    Submit,
    Tick,
    Watchdog,
)
from attachdaemon_core.leader.roles import next_wake, step, watchdog_sync, watching
from attachdaemon_core.leader.watchdog import kill_session_members, session_is_ours, signal_session_group
from attachdaemon_core.leader.wire import MAX_LINE, Output, parse_command
from attachdaemon_core.leader.worker import Worker
from attachdaemon_core.osproc.fds import pipe
from attachdaemon_core.osproc.layer import LIVE


@dataclass
class Params:
    name: str
    backend: str
    lease: float = 15.0
    renew: float = 3.0
    stop_timeout: float = 4.0
    margin: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def config(self, lock: LeaderLock) -> Config:
        return Config(
            lease=self.lease,
            renew=self.renew,
            stop_timeout=self.stop_timeout,
            margin=self.margin,
            state_may_be_lost=lock.state_may_be_lost,
            handover_grace=lock.handover_grace,
        )


class Holder:
    """The holder's I/O: feeds the role machine (:func:`~attachdaemon_core.leader.roles.step`)
    and carries out its actions. ``clock``, ``wall`` and ``rand`` are the machine's monotonic
    time, the wall-clock time shown as "since", and its random draws."""

    def __init__(
        self,
        params: Params,
        lock: LeaderLock,
        *,
        infd: int = 0,
        outfd: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        self.p = params
        self.lock = lock
        self.infd = infd
        self.clock, self.wall, self.rand = clock, wall, rand
        self.state = State(params.config(lock))
        self.pending: collections.deque[Event] = collections.deque()
        self.feeding = False
        self.sel = selectors.DefaultSelector()
        self.out = Output(outfd, self.sel, clock, self._parent_gone)
        self.worker = Worker(lock)
        self.inbuf = b""
        self.watch_registered: int | None = None
        self.wd: subprocess.Popen[bytes] | None = None
        self.wd_chan: Channel | None = None
        self.wd_lost = False  # a send failed: restarted by the loop, outside the role machine's step
        self.sig_r, self.sig_w = pipe(nonblock=True)
        self.actions: dict[type[Any], Callable[[Any], None]] = {
            Submit: lambda a: self.worker.submit(a.op, a.lease),
            Abort: lambda a: self.lock.abort(),
            Emit: lambda a: self.out.emit(a.event, **a.fields),
            Announce: self._announce,
            Info: self.out.info,
            Error: lambda a: self.out.error(a.reason),
            SignalSession: self._signal_session,
            KillSession: self._kill_session,
            CheckSession: self._check_session,
            Watchdog: self._watchdog,
        }

    # --- the role machine ------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Step the role machine with ``event`` and carry out its actions; an action's answer
        (an event of its own) is handled after them, in order."""
        self.pending.append(event)
        if self.feeding:
            return
        self.feeding = True
        try:
            while self.pending:
                self.state, actions = step(self.state, self.clock(), self.pending.popleft())
                for action in actions:
                    self.actions[type(action)](action)
        finally:
            self.feeding = False

    def _result(self, op: Op, result: Any, err: BaseException | None) -> Event:
        """The event a lock call's outcome is."""
        lease = result if isinstance(result, Lease) else None
        jitter = self.rand()
        if op is Op.ACQUIRE:
            return AcquireDone(lease, err, jitter=jitter)
        if op is Op.RENEW:
            return RenewDone(lease, err, jitter=jitter)
        if op is Op.RELEASE:
            return ReleaseDone(err, jitter=jitter)
        return HolderDone(result if isinstance(result, dict) else None, err, jitter=jitter)

    # --- actions ---

    def _announce(self, a: Announce) -> None:
        self.out.emit(
            "acquired",
            token=a.token,
            since=self.wall(),
            clean_handover=a.clean_handover,
            lock_delay=a.lock_delay,
            d_stop=a.d_stop,
            d_kill=a.d_kill,
        )

    def _signal_session(self, a: SignalSession) -> None:
        signal_session_group(a.session.sid, a.session.starttime, a.session.stop_signal)

    def _kill_session(self, a: KillSession) -> None:
        kill_session_members(a.session.sid, a.session.starttime)

    def _check_session(self, a: CheckSession) -> None:
        s = a.session
        if a.kill:
            left = kill_session_members(s.sid, s.starttime) > 0
        else:
            left = session_is_ours(s.sid, s.starttime) and bool(LIVE.session_members(s.sid))
        if not left:
            self.feed(SessionGone(s.sid, jitter=self.rand()))

    def _watchdog(self, a: Watchdog) -> None:
        fds = self.lock.lock_fds() if a.lock_fds else []
        chan = self.wd_chan
        if chan is None or (a.lock_fds and not fds):
            return  # no watchdog now (it is re-synced when restarted), or no fd to hand over
        if not chan.send(a.msg, fds):
            self.wd_lost = True  # whole frames or none: restarted and re-synced by the loop

    # --- watchdog process ------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        self.wd, self.wd_chan = watchdog.start()
        self.sel.register(self.wd_chan.sock, selectors.EVENT_READ, "watchdog")

    def _read_watchdog(self) -> None:
        chan = self.wd_chan
        if chan is not None:
            for _msg, fds in chan.receive():  # the watchdog sends nothing: what matters is EOF
                for fd in fds:
                    os.close(fd)
            if chan.over is not None:
                self._watchdog_died()

    def _watchdog_died(self) -> None:
        """The watchdog ended (EOF), or stopped reading: kill it, start another, re-sync it."""
        chan, self.wd_chan = self.wd_chan, None
        self.wd_lost = False
        why = "process died" if chan is None or chan.over == "EOF" else f"was lost ({chan.over})"
        if chan is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(chan.sock)
            chan.close()
        if self.wd is not None:
            with contextlib.suppress(Exception):
                self.wd.kill()
            self.wd.wait()
            self.wd = None
        if self.state.role is Role.EXITING:
            return
        self.out.emit("error", reason=f"the watchdog {why}; restarted")
        self._start_watchdog()
        for action in watchdog_sync(self.state):
            self.actions[type(action)](action)

    # --- parent ----------------------------------------------------------------------------

    def _read_parent(self) -> None:
        try:
            data = os.read(self.infd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._parent_gone()
            return
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if line.strip():
                event = parse_command(line)
                if isinstance(event, str):
                    self.out.emit("error", reason=event)
                else:
                    self.feed(event)
        if len(self.inbuf) > MAX_LINE:
            self.inbuf = b""
            self.out.emit("error", reason="command line too long; dropped")

    def _parent_gone(self) -> None:
        if self.state.role is Role.EXITING:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.infd)
        self.feed(ParentGone())

    def _on_signal(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self.sig_r, 64):
                pass
        self._parent_gone()

    # --- loop ------------------------------------------------------------------------------

    def run(self) -> int:
        for fd in (self.infd, self.out.fd):
            os.set_blocking(fd, False)
        self._start_watchdog()
        self.sel.register(self.infd, selectors.EVENT_READ, "parent")
        self.sel.register(self.worker.rfd, selectors.EVENT_READ, "worker")
        self.sel.register(self.sig_r, selectors.EVENT_READ, "signal")
        signal.set_wakeup_fd(self.sig_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.worker.start()
        try:
            self._loop()
        finally:
            self._shutdown()
        return self.state.exit_code or 0

    def _loop(self) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "parent": self._read_parent,
            "worker": self._drain_worker,
            "watch": self._server_spoke,
            "watchdog": self._read_watchdog,
            "signal": self._on_signal,
            "out": self.out.flush,
        }
        while self.state.exit_code is None:
            self.feed(Tick(jitter=self.rand()))
            if self.state.exit_code is not None:
                break
            if self.wd_lost:
                self._watchdog_died()
            self._update_watch()
            for key, _mask in self.sel.select(next_wake(self.state, self.clock())):
                handlers[key.data]()

    def _drain_worker(self) -> None:
        for op, result, err in self.worker.drain():
            self.feed(self._result(op, result, err))

    def _server_spoke(self) -> None:
        self._unwatch()
        self.feed(ServerSpoke())

    def _update_watch(self) -> None:
        fd = self.lock.watch_fd() if watching(self.state) else None
        if fd == self.watch_registered:
            return
        self._unwatch()
        if fd is not None:
            try:
                self.sel.register(fd, selectors.EVENT_READ, "watch")
                self.watch_registered = fd
            except (KeyError, ValueError, OSError):
                pass

    def _unwatch(self) -> None:
        if self.watch_registered is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.watch_registered)
            self.watch_registered = None

    def _shutdown(self) -> None:
        # Never leave a daemon running without the lock's protection.
        s = self.state.session
        if s is not None:
            end = time.monotonic() + 5.0
            while kill_session_members(s.sid, s.starttime) and time.monotonic() < end:
                time.sleep(POLL)
        if self.state.busy is not None:
            self.lock.abort()
        self.worker.stop(timeout=3.0)
        if not self.worker.thread.is_alive():
            with contextlib.suppress(Exception):
                self.lock.close()
        self.out.drain(timeout=2.0, poll=POLL)
        signal.set_wakeup_fd(-1)
        if self.wd_chan is not None:
            self.wd_chan.close()  # EOF: the watchdog empties any session left and exits
            self.wd_chan = None
        if self.wd is not None:
            try:
                self.wd.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.wd.kill()
                self.wd.wait()
        for fd in (self.sig_r, self.sig_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.sel.close()
