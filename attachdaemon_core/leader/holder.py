"""The lock-holder process: holds one leader lock and owns the leader daemon's deadline.

Started by the supervisor as ``python -m attachdaemon_core.leader hold …`` (see ``__main__``),
it talks JSON lines with its parent on fd 0 (commands) and fd 1 (events); see the module
``attachdaemon_core.leader`` for the wire protocol.

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
PostgreSQL or file lock is freed only once the session is empty.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..proc import session_members
from .base import BackendUnavailable, LeaderLock, Lease, LeaseLost, LeaseUnknown
from .watchdog import kill_session_members, session_is_ours, signal_session_group

MAX_LINE = 65536
INFO_EVERY = 5.0  # seconds between repeated identical "info" events while following
ERROR_EVERY = 10.0
POLL = 0.02


@dataclass
class Params:
    name: str
    backend: str
    lease: float = 15.0
    renew: float = 3.0
    stop_timeout: float = 4.0
    margin: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def retry(self) -> float:
        """Base period of acquisition attempts while following (jittered 0.5x-1x)."""
        return min(self.renew, 1.0)


@dataclass
class Session:
    sid: int
    starttime: int
    stop_signal: int
    stop_sent: bool = False


class Worker:
    """One thread making the lock's blocking calls in order; results come back on a queue."""

    def __init__(self, lock: LeaderLock):
        self.lock = lock
        self.requests: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[str, Any, BaseException | None]] = queue.SimpleQueue()
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.busy: str | None = None
        self.busy_since = 0.0
        self.thread = threading.Thread(target=self._run, name="leader-lock", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, op: str, *args: Any) -> None:
        assert self.busy is None, f"worker busy with {self.busy}"
        self.busy, self.busy_since = op, time.monotonic()
        self.requests.put((op, args))

    def _run(self) -> None:
        while True:
            item = self.requests.get()
            if item is None:
                return
            op, args = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = getattr(self.lock, op)(*args)
            except Exception as exc:
                error = exc
            self.results.put((op, result, error))
            with contextlib.suppress(OSError):
                os.write(self.wfd, b"!")

    def drain(self) -> list[tuple[str, Any, BaseException | None]]:
        with contextlib.suppress(OSError):
            while os.read(self.rfd, 4096):
                pass
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                break
        if out:
            self.busy = None
        return out

    def stop(self, timeout: float) -> None:
        self.requests.put(None)
        self.thread.join(timeout)
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)


class Holder:
    def __init__(self, params: Params, lock: LeaderLock, *, infd: int = 0, outfd: int = 1):
        self.p = params
        self.lock = lock
        self.infd, self.outfd = infd, outfd
        self.sel = selectors.DefaultSelector()
        self.worker = Worker(lock)
        self.inbuf = b""
        self.outbuf = b""
        self.role = "follower"  # follower | delay | leader | stopping | exiting
        self.lease: Lease | None = None
        self.announced = False
        self.session: Session | None = None
        self.d_stop = self.d_kill = 0.0
        self.kill_at: float | None = None
        self.next_try = 0.0
        self.next_renew = 0.0
        self.delay_until = 0.0
        self.delay = 0.0
        self.after_stop = "follow"  # follow | release-exit | release-follow | exit
        self.hold_off = 0.0
        self.want_release = False
        self.releasing = False
        self.aborted = False
        self.want_holder = False
        self.last_renew_error: str | None = None
        self.released_token: int | None = None
        self.backoff = params.retry
        self.last_info: tuple[Any, ...] | None = None
        self.last_info_at = 0.0
        self.last_error: str | None = None
        self.last_error_at = 0.0
        self.watch_registered: int | None = None
        self.wd: subprocess.Popen[bytes] | None = None
        self.wd_sock: socket.socket | None = None
        self.exit_code: int | None = None
        self.exit_by = 0.0
        self.sig_r, self.sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # --- output ----------------------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        self.outbuf += line.encode()
        if len(self.outbuf) > 4 * MAX_LINE and event == "info":
            return  # the parent is not reading: keep what matters, drop repeated info
        self._flush()

    def _flush(self) -> None:
        while self.outbuf:
            try:
                n = os.write(self.outfd, self.outbuf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self.outbuf = b""
                    self._parent_gone()
                    return
                raise
            self.outbuf = self.outbuf[n:]
        self._set_out_interest()

    def _set_out_interest(self) -> None:
        registered = self.outfd in self.sel.get_map()
        if self.outbuf and not registered:
            self.sel.register(self.outfd, selectors.EVENT_WRITE, "out")
        elif not self.outbuf and registered:
            self.sel.unregister(self.outfd)

    def info(self, role: str, holder: dict[str, Any] | None, *, force: bool = False, **extra: Any) -> None:
        token = self.lease.token if self.lease is not None and role == "leader" else None
        key = (role, json.dumps(holder, sort_keys=True, default=str), token)
        now = time.monotonic()
        if force or key != self.last_info or now - self.last_info_at >= INFO_EVERY:
            self.last_info, self.last_info_at = key, now
            self.emit("info", role=role, holder=holder, token=token, **extra)

    def error(self, reason: str) -> None:
        now = time.monotonic()
        if reason != self.last_error or now - self.last_error_at >= ERROR_EVERY:
            self.last_error, self.last_error_at = reason, now
            self.emit("error", reason=reason)

    # --- watchdog --------------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.wd = subprocess.Popen(
                [sys.executable, "-m", "attachdaemon_core.leader", "watchdog", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        mine.setblocking(False)
        self.wd_sock = mine
        self.sel.register(mine, selectors.EVENT_READ, "watchdog")

    def _wd_send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        sock = self.wd_sock
        if sock is None:
            return
        data = json.dumps(msg).encode()
        try:
            if fds:
                socket.send_fds(sock, [data], fds)
            else:
                sock.send(data)
        except OSError:
            pass  # noticed as EOF by the loop; the watchdog is restarted and re-synced

    def _wd_sync(self) -> None:
        if self.lease is not None and self.role in ("delay", "leader", "stopping"):
            fds = self.lock.lock_fds()
            if fds:
                self._wd_send({"op": "hold"}, fds)
        if self.session is not None:
            s = self.session
            self._wd_send(
                {"op": "session", "sid": s.sid, "starttime": s.starttime, "stop_signal": s.stop_signal}
            )
            self._wd_deadline()

    def _wd_deadline(self) -> None:
        if self.session is None:
            return
        if self.role == "stopping":  # the holder already sent stop_signal itself
            kill_at, stop_at = (self.kill_at if self.kill_at is not None else self.d_kill), None
        else:
            kill_at, stop_at = self.d_kill, self.d_stop
        self._wd_send({"op": "deadline", "stop_at": stop_at, "kill_at": kill_at})

    def _watchdog_died(self) -> None:
        sock, self.wd_sock = self.wd_sock, None
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            sock.close()
        if self.wd is not None:
            with contextlib.suppress(Exception):
                self.wd.kill()
            self.wd.wait()
            self.wd = None
        if self.role == "exiting":
            return
        self.emit("error", reason="the watchdog process died; restarted")
        self._start_watchdog()
        self._wd_sync()

    # --- parent commands -------------------------------------------------------------------

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
                self._command(line)
        if len(self.inbuf) > MAX_LINE:
            self.inbuf = b""
            self.emit("error", reason="command line too long; dropped")

    def _command(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
            cmd = msg["cmd"]
        except (ValueError, KeyError, TypeError):
            self.emit("error", reason="malformed command; ignored")
            return
        if cmd == "session":
            try:
                s = Session(int(msg["sid"]), int(msg["starttime"]), int(msg.get("stop_signal", 15)))
            except (KeyError, TypeError, ValueError):
                self.emit("error", reason="malformed session command; ignored")
                return
            self._new_session(s)
        elif cmd == "stopped":
            sid = msg.get("sid")
            if self.session is not None and (sid is None or sid == self.session.sid):
                self.session = None
                self._wd_send({"op": "clear"})
        elif cmd == "release":
            self._release_cmd(bool(msg.get("follow", False)), float(msg.get("hold_off", self.p.lease)))
        elif cmd == "status":
            self.want_holder = True
        else:
            self.emit("error", reason=f"unknown command {str(cmd)[:40]!r}; ignored")

    def _new_session(self, s: Session) -> None:
        if self.role != "leader":
            # Spawned after we stopped leading (a race with "lost"): it must not run.
            kill_session_members(s.sid, s.starttime)
            self.emit("lost", reason="not the leader: the new session was killed")
            return
        self.session = s
        self._wd_send({"op": "session", "sid": s.sid, "starttime": s.starttime, "stop_signal": s.stop_signal})
        self._wd_deadline()

    def _release_cmd(self, follow: bool, hold_off: float) -> None:
        self.hold_off = max(0.0, hold_off)
        if self.role in ("delay", "leader"):
            self.after_stop = "release-follow" if follow else "release-exit"
            self._begin_stop(kill_after=self.p.stop_timeout, reason=None)
        elif self.role == "stopping":
            self.after_stop = "release-follow" if follow else "release-exit"
        else:
            self.emit("released", token=None)
            if follow:
                self.next_try = time.monotonic() + self.hold_off
            else:
                self._exit(0)

    def _parent_gone(self) -> None:
        if self.role == "exiting":
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.infd)
        # The supervisor died: nobody will reap or stop the daemon; kill it now.
        if self.session is not None:
            s = self.session
            kill_session_members(s.sid, s.starttime)
        if self.role in ("delay", "leader", "stopping"):
            self._begin_stop(kill_after=0.0, reason=None)
            self.after_stop = "exit"
        else:
            self._exit(0)

    # --- state machine ---------------------------------------------------------------------

    def _deadlines(self, lease: Lease) -> None:
        self.d_stop = lease.sent_at + self.p.lease - self.p.stop_timeout - self.p.margin
        self.d_kill = lease.sent_at + self.p.lease - self.p.margin
        self.next_renew = lease.sent_at + self.p.renew

    def _on_result(self, op: str, result: Any, err: BaseException | None) -> None:
        now = time.monotonic()
        if op == "try_acquire":
            if err is not None:
                self._unreachable(err)
                return
            self.backoff = self.p.retry
            if self.role != "follower":  # exit/release requested meanwhile
                if isinstance(result, Lease):
                    self.lease = result
                    self.want_release = True
                return
            if result is None:
                self.want_holder = True
                self.next_try = now + self.p.retry * random.uniform(0.5, 1.0)
                return
            self._acquired(result)
        elif op == "renew":
            if self.role not in ("delay", "leader"):
                return
            if err is None and isinstance(result, Lease):
                self.lease = result
                self._deadlines(result)
                self._wd_deadline()
                if self.role == "leader":  # the supervisor starts a daemon only before d_stop
                    self.emit("renewed", d_stop=self.d_stop, d_kill=self.d_kill)
            elif isinstance(err, LeaseLost):
                self._lose(f"lock lost: {err}", definite=True)
            else:
                reason = str(err) if isinstance(err, LeaseUnknown) else repr(err)
                self.last_renew_error = reason[:300]
                self.next_renew = now + self.p.renew / 2
        elif op == "release":
            self.released_token = self.lease.token if self.lease is not None else None
            self.lease = None
            self._after_release()
        elif op == "holder":
            if err is not None:
                self._unreachable(err)
                return
            if self.role == "follower":
                self.info("follower", result)
            elif self.role == "leader":
                self.info("leader", result, force=True)

    def _unreachable(self, err: BaseException) -> None:
        reason = str(err) if isinstance(err, BackendUnavailable) else type(err).__name__
        self.error(f"engine unreachable: {reason}")
        self.info("unknown", None)
        now = time.monotonic()
        self.backoff = min(self.backoff * 2, max(5.0, self.p.renew))
        self.next_try = now + self.backoff * random.uniform(0.5, 1.0)

    def _acquired(self, lease: Lease) -> None:
        self.lease = lease
        self._deadlines(lease)
        self.role = "delay"
        self.after_stop = "follow"
        fds = self.lock.lock_fds()
        if fds:
            self._wd_send({"op": "hold"}, fds)
        delay = 0.0
        if not lease.clean_handover and self.lock.state_may_be_lost:
            delay = self.p.lease + self.p.margin  # the old holder's daemon is gone by then
        elif not lease.previous_released:
            delay = self.lock.handover_grace
        self.delay = delay
        self.delay_until = time.monotonic() + delay
        if delay > 0:
            self.info("unknown", None, force=True, lock_delay=round(delay, 3))
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        assert self.lease is not None
        self.role = "leader"
        self.announced = True
        self.emit(
            "acquired",
            token=self.lease.token,
            since=time.time(),
            clean_handover=self.lease.clean_handover,
            lock_delay=round(self.delay, 3),
            d_stop=self.d_stop,
            d_kill=self.d_kill,
        )

    def _lose(self, reason: str, *, definite: bool) -> None:
        if definite:  # the lock may already be another holder's: no grace beyond its own
            kill_after = min(self.lock.handover_grace / 2, self.p.stop_timeout)
        else:
            kill_after = self.p.stop_timeout
        self._begin_stop(kill_after=kill_after, reason=reason)

    def _begin_stop(self, *, kill_after: float, reason: str | None) -> None:
        now = time.monotonic()
        announced, self.announced = self.announced, False
        kill_at = min(now + kill_after, max(self.d_kill, now)) if self.lease is not None else now
        if self.role == "stopping" and self.kill_at is not None:
            kill_at = min(kill_at, self.kill_at)
        else:
            self.releasing = False
        self.role = "stopping"
        self.kill_at = kill_at
        if self.session is not None:
            s = self.session
            if kill_after > 0 and not s.stop_sent:
                signal_session_group(s.sid, s.starttime, s.stop_signal)
                s.stop_sent = True
            self._wd_deadline()
        if reason is not None:
            if announced:
                self.emit("lost", reason=reason)
            else:
                self.info("unknown", None, force=True, reason=reason)

    def _stopping_tick(self, now: float) -> None:
        if self.releasing:
            return
        if self.session is not None:
            s = self.session
            if self.kill_at is not None and now >= self.kill_at:
                if kill_session_members(s.sid, s.starttime):
                    return
            elif session_is_ours(s.sid, s.starttime) and session_members(s.sid):
                return
            self.session = None
            self._wd_send({"op": "clear"})
        # The session is empty: release best-effort (aborting a hung call first).
        self.releasing = True
        self.want_release = True

    def _after_release(self) -> None:
        self._wd_send({"op": "drop"})
        self._wd_send({"op": "clear"})
        mode, self.after_stop = self.after_stop, "follow"
        self.releasing = False
        now = time.monotonic()
        if mode in ("release-exit", "release-follow"):
            self.emit("released", token=self.released_token)
        if mode in ("exit", "release-exit"):
            self._exit(0)
            return
        self.role = "follower"
        self.kill_at = None
        # After a loss, let the followers go first (no flapping back to a flaky host).
        wait = self.hold_off if mode == "release-follow" else self.p.retry * random.uniform(1.0, 2.0)
        self.next_try = now + wait
        self.want_holder = True

    def _exit(self, code: int) -> None:
        self.role = "exiting"
        self.exit_code = code

    # --- loop ------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if self.role in ("delay", "leader") and now >= self.d_stop:
            ago = now - (self.lease.sent_at if self.lease else now)
            self._lose(
                f"lease not renewed in time (last acknowledged renewal sent {ago:.1f}s ago)",
                definite=False,
            )
        if self.role == "delay" and now >= self.delay_until:
            self._become_leader()
        if self.role == "stopping":
            self._stopping_tick(now)
        busy = self.worker.busy
        if busy is not None:
            if self.want_release and busy != "release" and not self.aborted:
                self.aborted = True
                self.lock.abort()
            return
        self.aborted = False
        if self.want_release:
            self.want_release = False
            if self.lease is not None:
                self.worker.submit("release", self.lease)
            else:
                self._after_release()
            return
        if self.role in ("delay", "leader") and self.lease is not None and now >= self.next_renew:
            self.worker.submit("renew", self.lease)
        elif self.role == "follower" and now >= self.next_try:
            self.worker.submit("try_acquire")
        elif self.want_holder and self.role in ("follower", "leader"):
            self.want_holder = False
            self.worker.submit("holder")

    def _timeout(self) -> float:
        now = time.monotonic()
        due: list[float] = []
        if self.role in ("delay", "leader"):
            due += [self.d_stop]
            if self.worker.busy is None:
                due.append(self.next_renew)
        if self.role == "delay":
            due.append(self.delay_until)
        if self.role == "stopping" or self.want_release:
            due.append(now + POLL)
        if self.role == "follower" and self.worker.busy is None:
            due.append(self.next_try)
            if self.want_holder:
                due.append(now)
        return max(0.0, min(due) - now) if due else 1.0

    def _update_watch(self) -> None:
        fd = None
        if self.role in ("delay", "leader") and self.worker.busy is None:
            fd = self.lock.watch_fd()
        if fd == self.watch_registered:
            return
        if self.watch_registered is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.watch_registered)
        self.watch_registered = None
        if fd is not None:
            try:
                self.sel.register(fd, selectors.EVENT_READ, "watch")
                self.watch_registered = fd
            except (KeyError, ValueError, OSError):
                pass

    def _on_signal(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self.sig_r, 64):
                pass
        self._parent_gone()

    def run(self) -> int:
        for fd in (self.infd, self.outfd):
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
        return self.exit_code or 0

    def _loop(self) -> None:
        while self.exit_code is None:
            self._tick()
            if self.exit_code is not None:
                break
            self._update_watch()
            for key, _mask in self.sel.select(self._timeout()):
                what = key.data
                if what == "parent":
                    self._read_parent()
                elif what == "worker":
                    for op, result, err in self.worker.drain():
                        self._on_result(op, result, err)
                elif what == "watch":
                    self._unwatch()
                    self.next_renew = time.monotonic()  # the server said something: check now
                elif what == "watchdog":
                    self._read_watchdog()
                elif what == "signal":
                    self._on_signal()
                elif key.fd == self.outfd:
                    self._flush()

    def _unwatch(self) -> None:
        if self.watch_registered is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.watch_registered)
            self.watch_registered = None

    def _read_watchdog(self) -> None:
        sock = self.wd_sock
        if sock is None:
            return
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._watchdog_died()

    def _shutdown(self) -> None:
        # Never leave a daemon running without the lock's protection.
        if self.session is not None:
            s = self.session
            end = time.monotonic() + 5.0
            while kill_session_members(s.sid, s.starttime) and time.monotonic() < end:
                time.sleep(POLL)
        if self.worker.busy is not None:
            self.lock.abort()
        self.worker.stop(timeout=3.0)
        if not self.worker.thread.is_alive():
            with contextlib.suppress(Exception):
                self.lock.close()
        end = time.monotonic() + 2.0
        while self.outbuf and time.monotonic() < end:
            try:
                n = os.write(self.outfd, self.outbuf)
                self.outbuf = self.outbuf[n:]
            except BlockingIOError:
                time.sleep(POLL)
            except OSError:
                break
        signal.set_wakeup_fd(-1)
        if self.wd_sock is not None:
            self.wd_sock.close()  # EOF: the watchdog empties any session left and exits
            self.wd_sock = None
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
