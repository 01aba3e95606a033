"""The guard: a small process that outlives a supervisor crash.

Started by a host as ``python -m attachdaemon_core guard``; its first process exits at once (so
the host's reaper never sees it) and the detached guard runs the supervisor as its child. It is a
child subreaper, holds no lock, and is told of each attached daemon's session over a pipe at spawn
time. If the supervisor dies without saying ``exit``, the guard empties those sessions and starts
a new supervisor, which takes back the owners and re-adopts smart daemons from its state file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import time

from attachdaemon_core.engine import supervisor
from attachdaemon_core.engine.state_file import configure_logging
from attachdaemon_core.engine.supervisor import EXIT_LOCKED, EXIT_NO_OWNER, EXIT_OK
from attachdaemon_core.osproc.fds import pipe
from attachdaemon_core.osproc.layer import LIVE
from attachdaemon_core.osproc.spawn import set_process_name

log = logging.getLogger("attachdaemon")

GUARD_NAME = "ad-guard"  # /proc/PID/comm; the supervisor, forked from it, is "ad-supervisor"
RESPAWN_WINDOW = 10.0
MAX_RESPAWNS_IN_WINDOW = 10


class Guard:
    def __init__(self, runtime_dir: str) -> None:
        self.runtime_dir = runtime_dir
        self.sessions: dict[int, int] = {}
        self.respawns = 0
        self.recent: list[float] = []
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = pipe(nonblock=True)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the supervisor decides when everything ends
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")

    def spawn_supervisor(self) -> tuple[int, int]:
        """Fork the supervisor (no exec: the modules are already loaded here, shared with the
        child page by page, and a respawn costs no interpreter start)."""
        r, w = pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child runs the supervisor and never returns
            code = 70
            try:
                os.close(r)
                self._forget_in_child()
                code = supervisor.main(self.runtime_dir, w, self.respawns)
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(w)
        os.set_blocking(r, False)
        return pid, r

    def _forget_in_child(self) -> None:
        """In the forked supervisor: drop the guard's descriptors, handlers and log handlers."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        logger = logging.getLogger("attachdaemon")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()

    def run(self) -> int:
        set_process_name(GUARD_NAME)
        LIVE.become_subreaper()  # not on the portable layer (docs/process-model.md)
        while True:
            pid, r = self.spawn_supervisor()
            clean, code = self.watch(pid, r)
            if clean or code in (EXIT_OK, EXIT_LOCKED, EXIT_NO_OWNER):
                self.reap_all()
                return 0
            log.error(
                "supervisor (pid %d) died (%s); emptying its attached sessions and starting it again",
                pid,
                f"status {code}" if code >= 0 else f"signal {-code}",
            )
            self.empty_sessions()
            now = time.monotonic()
            self.recent = [t for t in self.recent if now - t < RESPAWN_WINDOW] + [now]
            if len(self.recent) > MAX_RESPAWNS_IN_WINDOW:
                log.error("supervisor died %d times in %.0fs; giving up", len(self.recent), RESPAWN_WINDOW)
                return 1
            self.respawns += 1

    def watch(self, sup_pid: int, r: int) -> tuple[bool, int]:
        """Follow the supervisor's session notes until it exits; (said 'exit', exit code)."""
        self.selector.register(r, selectors.EVENT_READ, "pipe")
        buf = b""
        clean = False
        code: int | None = None
        try:
            while code is None:
                for key, _ in self.selector.select(None):
                    if key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            while os.read(self.wake_r, 4096):
                                pass
                    else:
                        try:
                            chunk = os.read(r, 65536)
                        except BlockingIOError:
                            chunk = None
                        if chunk == b"":
                            self.selector.unregister(r)
                        elif chunk:
                            buf += chunk
                            *lines, buf = buf.split(b"\n")
                            for line in lines:
                                clean = self.note(line.decode()) or clean
                code = self.reap_until(sup_pid)
        finally:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(r)
            os.close(r)
        return clean, code

    def note(self, line: str) -> bool:
        parts = line.split()
        if parts[:1] == ["+"] and len(parts) == 3:
            self.sessions[int(parts[1])] = int(parts[2])
        elif parts[:1] == ["-"] and len(parts) == 2:
            self.sessions.pop(int(parts[1]), None)
        elif parts == ["exit"]:
            return True
        return False

    def reap_until(self, sup_pid: int) -> int | None:
        found: int | None = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if pid == 0:
                return found
            if pid == sup_pid:
                found = os.waitstatus_to_exitcode(status)

    def reap_all(self) -> None:
        self.reap_until(-1)

    def empty_sessions(self) -> None:
        # What is safe to kill (docs/process-model.md, the guard; README.md, "Security model"):
        # a recorded session is (leader pid, start time). A live leader with that start time is
        # the process we spawned: its whole session is ours. A live pid with another start time
        # is a reused pid, whatever session it leads now (a local user's `setsid` program may get
        # a recorded number): it and its session are left alone. With the leader gone (usually
        # killed by its parent-death signal), Linux does not hand out a pid number that still
        # names a live session, so the members are that session's, or a later session's whose
        # leader also died: only those descending from this guard (a subreaper, it inherits
        # every orphan of the supervisor's tree) are killed.
        me = os.getpid()
        emptied = []
        for sid, starttime in list(self.sessions.items()):
            leader = LIVE.stat(sid)
            if leader is None:
                self._kill_descendants(sid, me)
                emptied.append(sid)
            elif leader.starttime == starttime:
                LIVE.kill_session(sid)
                emptied.append(sid)
            else:
                log.warning("pid %d was reused by another process; its session is not ours to empty", sid)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(self._ours_left(s, me) for s in emptied):
            self.reap_all()
            time.sleep(0.005)
        self.reap_all()
        self.sessions.clear()

    @staticmethod
    def _ours_left(sid: int, ancestor: int) -> bool:
        return any(p == sid or LIVE.descends_from(p, ancestor) for p in LIVE.session_members(sid))

    @staticmethod
    def _kill_descendants(sid: int, ancestor: int) -> None:
        """SIGKILL the members of session ``sid`` that descend from ``ancestor``, each checked
        again once its pidfd is open (so a pid reused meanwhile is never hit)."""
        for pid in LIVE.session_members(sid):
            fd = LIVE.pidfd_open(pid)
            if fd is None:
                continue
            try:
                st = LIVE.stat(pid)
                if st is not None and st.sid == sid and LIVE.descends_from(pid, ancestor):
                    LIVE.pidfd_signal(fd, signal.SIGKILL)
            finally:
                LIVE.close(fd)


def main(runtime_dir: str) -> int:
    if os.fork() > 0:
        os._exit(0)  # the host waits for this; the guard lives on, detached
    configure_logging(runtime_dir)
    code = Guard(runtime_dir).run()
    # The guard is the tree's last process to go: it ends at once, without the interpreter's
    # finalization (about 25 ms with the supervisor's modules loaded; bench/PROFILE-exec-form.md).
    logging.shutdown()
    os._exit(code)
