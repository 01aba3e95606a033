"""A fake clock and a fake OS for replaying histories through ``Supervisor`` without processes.

The processes exist only in :class:`FakeOS`'s table. What the supervisor does to them through its
OS seam (``engine/os_seam.py``) is logged in order in ``calls``: spawns and signals, the assertion
of a replayed test. The test makes the rest happen: a process exits, forks, a stranger appears.
The real /proc identity checks (``pidfile.verify``, ``launches``) run against this table, since
they read through the seam too. Files stay real: pidfiles, the state file, the per-user pidfile
locks and the runtime directory live in the test's temporary directory.

Start times are in /proc ticks on the real boot clock (``proc.boot_seconds``), the clock the
identity checks compare with a pidfile's real mtime; the supervisor's own clock is the fake one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.engine import launches
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.supervisor import Supervisor
from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.spawn import SpawnRequest

SUPERVISOR = 3000  # the supervisor's pid, as the fake tells it
GUARD = 2999  # its parent
OWNER = 4000  # the server process that declares


def ticks(offset: float = 0.0) -> int:
    """Now plus ``offset`` seconds, as a /proc start time (clock ticks since boot)."""
    return int((proc.boot_seconds() + offset) * proc.CLK_TCK)


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeProc:
    pid: int
    argv: tuple[str, ...]
    ppid: int
    sid: int
    pgid: int
    starttime: int
    uid: int
    env: frozenset[bytes] = frozenset()
    stdio: dict[int, int] = field(default_factory=dict)  # 0/1/2 -> our copy of the child's end

    @property
    def name(self) -> str:
        return self.argv[0]


@dataclass
class FakeOS(RealOS):
    """Processes that exist only in this table; every act on one is logged in ``calls``."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    procs: dict[int, FakeProc] = field(default_factory=dict)
    waiting: list[tuple[int, int]] = field(default_factory=list)  # exits not reaped yet
    next_pid: int = 5000
    # pidfds: a pipe's read end stands in for one; its write end closes when the process exits,
    # so the selector sees it readable then, as it would a pidfd.
    pidfds: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    scans: int = 0  # /proc passes made for session checks (live_sessions)

    def __post_init__(self) -> None:
        self.procs[OWNER] = FakeProc(OWNER, ("server",), 1, OWNER, OWNER, ticks(-60), os.geteuid())

    @property
    def live(self) -> dict[int, str]:
        """The live processes other than the owner: pid -> program."""
        return {pid: p.name for pid, p in self.procs.items() if pid != OWNER}

    # -- what a test makes happen
    def exit(self, pid: int, *, code: int = 0, sig: int | None = None) -> None:
        """``pid`` ends: its children go to the supervisor (a subreaper), its pidfds turn
        readable, and the supervisor may reap it if it is its child."""
        gone = self.procs.pop(pid)
        for fd in gone.stdio.values():
            os.close(fd)
        for p in self.procs.values():
            if p.ppid == pid:
                p.ppid = SUPERVISOR
        for fd, (watched, w) in list(self.pidfds.items()):
            if watched == pid and w is not None:
                os.close(w)
                self.pidfds[fd] = (watched, None)
        if gone.ppid == SUPERVISOR:
            self.waiting.append((pid, sig if sig is not None else code << 8))

    def fork(
        self,
        parent: int,
        *,
        argv: tuple[str, ...] | None = None,
        setsid: bool = True,
        env: frozenset[bytes] | None = None,
    ) -> int:
        """``parent`` starts a child (its program, environment and user inherited unless given);
        a daemonizing fork calls setsid, leaving the launch's session."""
        p = self.procs[parent]
        self.next_pid += 1
        pid = self.next_pid
        sid = pid if setsid else p.sid
        pgid = pid if setsid else p.pgid
        env = p.env if env is None else env
        self.procs[pid] = FakeProc(pid, argv or p.argv, parent, sid, pgid, ticks(), p.uid, env)
        return pid

    def stranger(self, pid: int, argv: tuple[str, ...], *, started: float = -60.0) -> None:
        """An unrelated process of ours, started ``started`` seconds from now, in its own session."""
        self.procs[pid] = FakeProc(pid, argv, 1, pid, pid, ticks(started), os.geteuid())

    def say(self, pid: int, message: dict[str, Any]) -> None:
        """``pid`` writes a JSON line on its stdout (a lock holder's event)."""
        os.write(self.procs[pid].stdio[1], (json.dumps(message) + "\n").encode())

    def heard(self, pid: int) -> list[dict[str, Any]]:
        """The JSON lines written to ``pid``'s stdin since last asked."""
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.procs[pid].stdio[0], 65536):
                data += chunk
        return [json.loads(line) for line in data.splitlines()]

    def signals_to(self, pid: int) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] != "spawn" and pid in c]

    def close_all(self) -> None:
        for p in self.procs.values():
            for fd in p.stdio.values():
                os.close(fd)
            p.stdio.clear()
        for fd, (_pid, w) in self.pidfds.items():
            os.close(fd)
            if w is not None:
                os.close(w)
        self.pidfds.clear()

    # -- the seam: acts
    def spawn(self, req: SpawnRequest) -> int:
        self.next_pid += 1
        pid = self.next_pid
        env = frozenset(f"{k}={v}".encode() for k, v in req.env.items())
        # The child's ends of the pipes it was given stay open while it lives (our copies).
        given = {0: req.stdin_fd, 1: req.stdout_fd, 2: req.stderr_fd}
        stdio = {n: os.dup(fd) for n, fd in given.items() if fd is not None and fd > 2}
        if 0 in stdio:
            os.set_blocking(stdio[0], False)
        self.procs[pid] = FakeProc(
            pid, tuple(req.argv), SUPERVISOR, pid, pid, ticks(), os.geteuid(), env, stdio
        )
        self.calls.append(("spawn", req.argv[0], pid))
        return pid

    def reap_one(self) -> tuple[int, int] | None:
        return self.waiting.pop(0) if self.waiting else None

    def signal_group(self, pgid: int, sig: int) -> bool:
        leader = self.procs.get(pgid)
        self.calls.append(("signal", leader.name if leader else None, pgid, signal.Signals(sig).name))
        return self.group_exists(pgid)

    def kill_session(self, sid: int, sig: int = signal.SIGKILL) -> int:
        members = self.session_members(sid)
        if members:
            self.calls.append(("kill_session", sid, signal.Signals(sig).name, *members))
        return len(members)

    def pidfd_open(self, pid: int) -> int | None:
        if pid not in self.procs:
            return None
        r, w = os.pipe()
        self.pidfds[r] = (pid, w)
        return r

    def pidfd_signal(self, pidfd: int, sig: int) -> bool:
        pid = self.pidfds[pidfd][0]
        p = self.procs.get(pid)
        self.calls.append(("pidfd_signal", p.name if p else None, pid, signal.Signals(sig).name))
        return p is not None

    def close(self, fd: int) -> None:
        _pid, w = self.pidfds.pop(fd)
        if w is not None:
            os.close(w)
        os.close(fd)

    # -- the seam: reads
    def stat(self, pid: int) -> proc.Stat | None:
        p = self.procs.get(pid)
        if p is None:
            return None
        return proc.Stat(pid, p.name[:15], "S", p.ppid, p.pgid, p.sid, 0, 0, p.starttime, 0)

    def exe(self, pid: int) -> str | None:
        p = self.procs.get(pid)
        return f"/usr/bin/{os.path.basename(p.name)}" if p else None

    def cmdline(self, pid: int) -> list[str]:
        p = self.procs.get(pid)
        return list(p.argv) if p else []

    def owner_uid(self, pid: int) -> int | None:
        p = self.procs.get(pid)
        return p.uid if p else None

    def is_alive(self, pid: int) -> bool:
        return pid in self.procs

    def has_env(self, pid: int, entry: bytes) -> bool:
        p = self.procs.get(pid)
        return p is not None and entry in p.env

    def descends_from(self, pid: int, ancestor: int, limit: int = 64) -> bool:
        p = self.procs.get(pid)
        while p is not None and p.ppid > 1:
            if p.ppid == ancestor:
                return True
            p = self.procs.get(p.ppid)
        return False

    def started_since(self, since: int) -> list[proc.Stat]:
        return [st for pid in self.procs if (st := self.stat(pid)) and st.starttime >= since]

    def proc_pids(self) -> list[int]:
        return list(self.procs)

    def session_members(self, sid: int) -> list[int]:
        return [pid for pid, p in self.procs.items() if p.sid == sid]

    def live_sessions(self) -> set[int]:
        self.scans += 1
        return {p.sid for p in self.procs.values()}

    def group_exists(self, pgid: int) -> bool:
        return any(p.pgid == pgid for p in self.procs.values())

    def getpid(self) -> int:
        return SUPERVISOR

    def getppid(self) -> int:
        return GUARD


def new_supervisor(runtime_dir: Path, clock: FakeClock, fake: FakeOS) -> Supervisor:
    s = Supervisor(str(runtime_dir), clock=clock, os=fake)
    s.open_watcher()
    return s


def end_supervisor(s: Supervisor) -> None:
    """What the death of the supervisor's process would release: its pidfile locks, its fds."""
    for d in s.daemons.values():
        launches.unlock_pidfile(d)
    if s.watcher.inotify is not None:
        s.selector.unregister(s.watcher.inotify.fd)
        s.watcher.inotify.close()
    s.selector.close()


def turn(s: Supervisor) -> None:
    """One turn of the supervisor's loop, not waiting: what is readable, reaped, due."""
    s.turn(0)


@contextlib.contextmanager
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Supervisor, FakeOS, FakeClock]]:
    """A supervisor on a fake clock and a fake OS, its files under ``tmp_path`` (the per-user
    pidfile locks too: ``$XDG_RUNTIME_DIR`` points there)."""
    user_dir = tmp_path / "xdg"
    user_dir.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(user_dir))
    (tmp_path / "run").mkdir()
    clock, fake = FakeClock(), FakeOS()
    s = new_supervisor(tmp_path / "run", clock, fake)
    try:
        yield s, fake, clock
    finally:
        with contextlib.suppress(KeyError, ValueError, OSError):
            end_supervisor(s)
        fake.close_all()
