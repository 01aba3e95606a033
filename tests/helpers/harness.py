"""Test harness: real owner processes, a real supervisor, deadlines instead of sleeps.

Every process a test starts is tracked and ended by pid at teardown, and the teardown asserts
that nothing the test started is left running (smart daemons are ended explicitly there, since
surviving the server is their job).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.model import DaemonSpec

T = TypeVar("T")
PROBE = str(Path(__file__).with_name("probe_daemon.py"))
PY = sys.executable


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    what: str = "condition",
    interval: float = 0.005,
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail showing the last value seen."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # keep polling; show it if we time out
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def assert_stays(
    predicate: Callable[[], object],
    seconds: float,
    what: str = "condition",
    interval: float = 0.05,
    show: Callable[[], object] | None = None,
) -> None:
    """A quiet window: poll ``predicate`` for the whole of ``seconds`` (first at once, last at the
    end) and fail at the first falsy value, saying when in the window and what ``show`` returns
    then (default: the value seen). For what must NOT happen; ``wait_for`` is for what must."""
    start = time.monotonic()
    end = start + seconds
    while True:
        value = predicate()
        if not value:
            seen = show() if show is not None else value
            when = time.monotonic() - start
            raise AssertionError(f"{what} stopped holding {when:.2f}s into a {seconds:g}s window: {seen!r}")
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(interval, left))


def alive(pid: int) -> bool:
    return proc.is_alive(pid)


def supervisor_pids(runtime_dir: str) -> list[int]:
    """The supervisor processes of ``runtime_dir`` (named ad-supervisor; the guard is ad-guard)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc.stat(int(entry))
            named = st is not None and st.comm == "ad-supervisor" and st.state not in ("Z", "X")
            if named and runtime_dir in proc.cmdline(int(entry)):
                found.append(int(entry))
    return found


class Events:
    """The probe daemons' shared events file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[int, str, str, int]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 4:
                out.append((int(parts[0]), parts[1], " ".join(parts[2:-1]), int(parts[-1])))
        return out

    def starts(self, name: str) -> list[int]:
        return [pid for _, n, what, pid in self.lines() if n == name and what == "START"]

    def start_times(self, name: str) -> list[int]:
        return [ns for ns, n, what, _ in self.lines() if n == name and what == "START"]

    def signals(self, name: str, pid: int | None = None) -> list[int]:
        return [
            int(w.split()[1])
            for _, n, w, p in self.lines()
            if n == name and w.startswith("SIGNAL") and (pid is None or p == pid)
        ]

    def all_pids(self) -> set[int]:
        return {pid for _, _, _, pid in self.lines()}


def probe(events: Events, name: str, *opts: str) -> tuple[str, ...]:
    return (PY, PROBE, str(events.path), name, *opts)


class Owner:
    """A stand-in for a server master: a real process the test can reload and kill."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, "-c", "import signal; signal.pause()"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        self.proc.wait(5)


class Sandbox:
    """One runtime directory, its owners and its supervisor."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runtime_dir = tempfile.mkdtemp(prefix="ad-", dir="/tmp")
        os.chmod(self.runtime_dir, 0o700)
        self.events = Events(tmp / "events.log")
        self.owners: list[Owner] = []
        self.extra_pids: set[int] = set()
        self.survivors_ok: set[int] = set()
        self.cleanup_paths: list[Path] = [Path(self.runtime_dir)]

    # -- owners and declarations
    def owner(self) -> Owner:
        o = Owner()
        self.owners.append(o)
        return o

    def join(self, owner: Owner, specs: Iterable[DaemonSpec]) -> Any:
        return runtime.join(self.runtime_dir, owner.pid, runtime.payload(list(specs), source="test"))

    def reload(self, owner: Owner, specs: Iterable[DaemonSpec], policies: bool = True) -> Any:
        return self.call(
            "reload",
            owner=runtime.owner_identity(owner.pid),
            declarations=runtime.payload(list(specs), source="test"),
            policies=policies,
        )

    def call(self, verb: str, **args: Any) -> Any:
        return client.call(self.runtime_dir, verb, **args)

    # -- reading state
    def status(self) -> dict[str, Any]:
        return self.call("status")  # type: ignore[no-any-return]

    def daemon(self, name: str) -> dict[str, Any]:
        for d in self.status()["daemons"]:
            if d["name"] == name:
                return d  # type: ignore[no-any-return]
        raise KeyError(name)

    def pid_of(self, name: str) -> int | None:
        return self.daemon(name)["pid"]  # type: ignore[no-any-return]

    def running(self, name: str) -> int | None:
        d = self.daemon(name)
        return d["pid"] if d["state"] == "running" else None

    def supervisor_pid(self) -> int:
        return self.status()["supervisor"]["pid"]  # type: ignore[no-any-return]

    def supervisor_gone(self) -> bool:
        try:
            client.call(self.runtime_dir, "ping", timeout=0.5)
        except client.NoSupervisor:
            return True
        return False

    def log_text(self) -> str:
        try:
            return Path(self.runtime_dir, "supervisor.log").read_text()
        except FileNotFoundError:
            return ""

    def guard_pid(self, sup_pid: int) -> int | None:
        st = proc.stat(sup_pid)
        return st.ppid if st else None

    # -- teardown
    def cleanup(self) -> list[str]:
        """End everything this test started; return what was still alive and should not be."""
        problems: list[str] = []
        sup = guard = None
        known: dict[int, int] = {}  # pid -> start time: daemons the supervisor reports
        with contextlib.suppress(Exception):
            sup = self.supervisor_pid()
            guard = self.guard_pid(sup)
            for d in self.status()["daemons"]:
                st = proc.stat(d["pid"]) if d["pid"] else None
                if st is not None:
                    known[st.pid] = st.starttime  # it may not have logged START yet
        for o in self.owners:
            with contextlib.suppress(Exception):
                o.kill()
        if sup is not None:
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not alive(sup), 15, "supervisor exit")
            if alive(sup):
                problems.append(f"supervisor {sup} still running after its owners died")
        for pid, starttime in known.items():  # smart daemons outlive the server by design
            st = proc.stat(pid)
            if st is not None and st.starttime == starttime:
                self.extra_pids.add(pid)
        # A probe still starting has not logged its START: find it by its events path, too.
        self.extra_pids |= self._probes_by_cmdline()
        self._end_recorded()
        for pid in (sup, guard):
            if pid is not None and alive(pid) and pid != os.getpid() and pid != 1:
                st = proc.stat(pid)
                if st is not None and st.comm in ("ad-supervisor", "ad-guard"):
                    os.kill(pid, signal.SIGKILL)
        pids = self.events.all_pids() | self.extra_pids
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(alive(p) for p in pids), 5, "test processes to end")
        for path in self.cleanup_paths:
            shutil.rmtree(path, ignore_errors=True)
        left = [p for p in pids if alive(p)]
        if left:
            problems.append(f"processes still alive after teardown: {left}")
        return problems

    def _probes_by_cmdline(self) -> set[int]:
        path = str(self.events.path)
        found = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and path in proc.cmdline(int(entry)):
                found.add(int(entry))
        return found

    def _end_recorded(self) -> set[int]:
        """SIGKILL (through a pidfd, with its session) every live pid this test recorded."""
        pids = self.events.all_pids() | self.extra_pids
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(Exception):
                    proc.kill_session(pid)
                fd = proc.pidfd_open(pid)
                if fd is not None:
                    proc.pidfd_signal(fd, signal.SIGKILL)
                    os.close(fd)
        return pids
