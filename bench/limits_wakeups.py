"""What ``max_rss`` costs the supervisor (issue 13 §4): its wake-ups per second with N attached
daemons, without any limit and with ``max_rss`` on every one, counted two ways: the supervisor's
context switches (/proc/PID/status) and its ``epoll_wait`` calls (``strace -c``, when installed),
plus the CPU time each check of the whole set takes.

usage: python bench/limits_wakeups.py [--daemons 50] [--window 20] [--interval 5]
Every process it starts is ended by pid (the owner; the supervisor stops its daemons).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.model import DaemonSpec


def switches(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return sum(
            int(line.split()[1]) for line in f if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt"))
        )


def epoll_calls(pid: int, window: float) -> int | None:
    """epoll_wait calls of ``pid`` during ``window`` seconds (strace -c), None without strace."""
    if shutil.which("strace") is None:
        return None
    tracer = subprocess.Popen(
        ["strace", "-c", "-e", "trace=epoll_wait,epoll_pwait", "-p", str(pid)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(window)
    tracer.send_signal(signal.SIGINT)
    _, err = tracer.communicate(timeout=10)
    match = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?epoll_p?wait", err, re.MULTILINE)
    return int(match.group(1)) if match else 0


def measure(specs: list[DaemonSpec], window: float) -> dict[str, Any]:
    rd = tempfile.mkdtemp(prefix="ad-bench-", dir="/tmp")
    owner = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True)
    try:
        runtime.join(rd, owner.pid, runtime.payload(specs, source="bench"))
        end = time.monotonic() + 20
        while time.monotonic() < end:
            status = client.call(rd, "status")
            if all(d["state"] == "running" for d in status["daemons"]):
                break
            time.sleep(0.1)
        sup = int(status["supervisor"]["pid"])
        time.sleep(1.0)  # the status connections' teardown is over: a quiet start
        st0, cs0 = proc.stat(sup), switches(sup)
        time.sleep(window)
        st1, cs1 = proc.stat(sup), switches(sup)
        calls = epoll_calls(sup, window)
        cpu = (st1.cpu_seconds - st0.cpu_seconds) if st0 and st1 else None
        return {
            "wakeups_per_s": (cs1 - cs0) / window,
            "epoll_per_s": None if calls is None else calls / window,
            "cpu_ms_per_s": None if cpu is None else 1000 * cpu / window,
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            owner.kill()
        owner.wait(5)
        end = time.monotonic() + 15
        while time.monotonic() < end and not _gone(rd):
            time.sleep(0.1)
        shutil.rmtree(rd, ignore_errors=True)


def _gone(rd: str) -> bool:
    try:
        client.call(rd, "ping", timeout=0.5)
    except client.NoSupervisor:
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemons", type=int, default=50)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    plain = [DaemonSpec(name=f"s{i}", command=("sleep", "100000")) for i in range(args.daemons)]
    limited = [
        DaemonSpec(
            name=f"m{i}", command=("sleep", "100000"), max_rss=512 << 20, limit_check_interval=args.interval
        )
        for i in range(args.daemons)
    ]
    print(f"{args.daemons} attached daemons, {args.window:g}-s windows, on {os.uname().release}")
    for label, specs in (("no limit", plain), (f"max_rss every {args.interval:g}s", limited)):
        r = measure(specs, args.window)
        epoll = "n/a" if r["epoll_per_s"] is None else f"{r['epoll_per_s']:.2f}"
        print(
            f"  {label:22} wake-ups/s {r['wakeups_per_s']:.2f}   epoll_wait/s {epoll}   "
            f"supervisor CPU {r['cpu_ms_per_s']:.3f} ms/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
