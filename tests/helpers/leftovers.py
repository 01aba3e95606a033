"""Find the processes a test run left behind: every process started with the run's marker in its
environment (tests, and the servers and daemons they start, inherit it), wherever it went
(daemonized, re-parented, another uid)."""

from __future__ import annotations

import os
import signal

from attachdaemon_core.osproc import proc

RUN_VAR = "ATTACHDAEMON_TEST_RUN"


def mark_run() -> str:
    """Give this run a marker of its own that its child processes inherit (a value inherited from
    outside is replaced: processes that were not started by this run must not carry it)."""
    os.environ[RUN_VAR] = f"{os.getpid()}-{os.urandom(6).hex()}"
    return os.environ[RUN_VAR]


def find(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process carrying ``marker``, other than this one and
    its ancestors."""
    entry = f"{RUN_VAR}={marker}".encode()
    ours = _ancestry()  # this process and those that started it (CI may have set the marker)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in ours:
            continue
        pid = int(name)
        st = proc.stat(pid)
        if st is None or st.state in ("Z", "X") or not proc.has_env(pid, entry):
            continue
        found.append((pid, " ".join(proc.cmdline(pid))[:200] or st.comm))
    return found


def _ancestry() -> set[int]:
    """This process and its chain of parents."""
    chain, pid = set(), os.getpid()
    while pid > 0 and pid not in chain:
        chain.add(pid)
        st = proc.stat(pid)
        if st is None:
            break
        pid = st.ppid
    return chain


def kill(pids: list[int]) -> None:
    """SIGKILL each, by pidfd (a pid reused meanwhile is not hit)."""
    for pid in pids:
        fd = proc.pidfd_open(pid)
        if fd is not None:
            proc.pidfd_signal(fd, signal.SIGKILL)
            os.close(fd)
