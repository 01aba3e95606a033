"""CI's last check: list every process the test run left behind, and fail if there is one.

usage: python3 scripts/ci_leftovers.py snapshot FILE   (before the tests)
       python3 scripts/ci_leftovers.py check FILE      (after them)

A leftover is a live process that was not running at the snapshot and either carries the run's
marker (``ATTACHDAEMON_CI_RUN``, set by .ci/run and inherited by everything the tests start,
wherever it went: daemonized, re-parented, another uid) or still descends from this script's
own ancestors. A system service's new child (a PostgreSQL autovacuum worker, say), or a process
the machine itself started meanwhile, is not counted. Stdlib only.
"""

from __future__ import annotations

import os
import sys


def _stat(pid: int) -> tuple[int, int, str, str] | None:
    """(ppid, starttime, state, comm) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return int(rest[1]), int(rest[19]), rest[0], raw[raw.find("(") + 1 : raw.rfind(")")]


def _processes() -> dict[int, tuple[int, int, str, str]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200]
    except OSError:
        return ""


def _has_env(pid: int, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False


def _descends(ppid: int, procs: dict[int, tuple[int, int, str, str]], ancestors: set[int]) -> bool:
    for _ in range(64):
        if ppid in ancestors:
            return True
        if ppid <= 1 or ppid not in procs:
            return False
        ppid = procs[ppid][0]
    return False


def snapshot(path: str) -> None:
    with open(path, "w") as f:
        for pid, (_, start, _, _) in _processes().items():
            f.write(f"{pid} {start}\n")


def check(path: str) -> int:
    with open(path) as f:
        before = {tuple(map(int, line.split())) for line in f if line.strip()}
    procs = _processes()
    ancestors = set()
    pid = os.getpid()
    while pid > 1 and pid in procs:
        ancestors.add(pid)
        pid = procs[pid][0]
    marker = os.environ.get("ATTACHDAEMON_CI_RUN", "")
    entry = f"ATTACHDAEMON_CI_RUN={marker}".encode()
    left = []
    for pid, (ppid, start, state, _comm) in procs.items():
        if pid in ancestors or (pid, start) in before or state in ("Z", "X") or pid in (1, 2) or ppid == 2:
            continue
        if (marker and _has_env(pid, entry)) or _descends(ppid, procs, ancestors):
            left.append(pid)
    print(f"ci: {len(left)} process(es) left over from the test run")
    for pid in sorted(left):
        print(f"  pid {pid} (parent {procs[pid][0]}): {_cmdline(pid) or procs[pid][3]}")
    return 1 if left else 0


if __name__ == "__main__":
    verb, file = sys.argv[1], sys.argv[2]
    if verb == "snapshot":
        snapshot(file)
        sys.exit(0)
    sys.exit(check(file))
