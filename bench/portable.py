"""The portable process layer beside linux (issue 14): the same owner and declarations, with
``ATTACHDAEMON_PLATFORM=portable`` in the supervisor's environment.

Three things are timed for it, no more: crash → running and smart restart (in the
``crash_and_smart`` phase, where it runs beside every other system), and here, phase
``portable_idle``, the idle cost with N smart daemons, linux and portable side by side in one
window: the supervisor's and guard's context switches (``Bench.idle_measure``, as for the other
idle rows) and, over a second window, the supervisor's waiting system calls counted by
``strace -c`` (epoll_wait, poll, select and their variants: each is one wake-up of its loop).
Smart daemons are not the supervisor's children, so the portable layer on Linux (no kqueue) polls
their exits; attached daemons are children and cost it nothing while idle.

Whether the layer was in effect is checked, not assumed: the linux supervisor holds a pidfd per
watched process, the portable one none (``layer_check``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from bench import PORTABLE, Instance, log

if TYPE_CHECKING:
    from bench import Bench

WAIT_CALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6")


def pidfds_held(pid: int | None) -> int | None:
    """How many pidfds ``pid`` holds open (None when its fds cannot be read)."""
    if pid is None:
        return None
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]":
                    n += 1
    except OSError:
        return None
    return n


def layer_check(bench: Bench, inst: Instance) -> None:
    """Record the pidfds the supervisor holds with its daemons running; note a portable
    supervisor that holds any (then the variable did not choose the portable layer)."""
    held = pidfds_held(inst.supervisor_pid())
    expect = "none" if inst.system == PORTABLE else "one per watched process"
    bench.results.setdefault("layers", {}).setdefault(inst.system, []).append(
        {"daemons": len(inst.daemons), "supervisor_pidfds": held, "expected": expect}
    )
    if inst.system == PORTABLE and held:
        bench.note(
            f"{PORTABLE}: the supervisor holds {held} pidfds: the portable layer was not in effect "
            "(is ATTACHDAEMON_PLATFORM read by this attachdaemon?); its figures are linux's"
        )
    if inst.system == "attachdaemon" and held == 0:
        bench.note("attachdaemon: the supervisor holds no pidfd: it did not run the linux layer")


def wait_calls(pids: dict[str, int | None], window: float) -> dict[str, Any]:
    """Each pid's waiting system calls over one shared ``window`` (``strace -c -f``, all its
    threads), or why they were not counted."""
    if shutil.which("strace") is None:
        return {s: "not counted (no strace)" for s in pids}
    time.sleep(1.0)  # the status calls that found the pids are over
    t0 = time.monotonic()  # strace counts from its attach to its detach, both within t0 … end
    tracers: dict[str, subprocess.Popen[str]] = {}
    for s, pid in pids.items():
        if pid is not None:
            tracers[s] = subprocess.Popen(
                ["strace", "-c", "-f", "-p", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
    time.sleep(window)
    out: dict[str, Any] = {}
    for tracer in tracers.values():
        tracer.send_signal(signal.SIGINT)
    elapsed = time.monotonic() - t0
    for s, tracer in tracers.items():
        try:
            _, err = tracer.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.communicate()
            out[s] = "not counted (strace did not detach)"
            continue
        if "Operation not permitted" in err:
            out[s] = "not counted (ptrace not permitted)"
            continue
        calls = {}
        for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", err, re.MULTILINE):
            calls[m.group(2)] = int(m.group(1))
        waits = sum(calls.get(c, 0) for c in WAIT_CALLS)
        out[s] = {
            "window_s": round(elapsed, 2),
            "wait_calls": waits,
            "wait_calls_per_s": waits / elapsed,
            "syscalls": sum(v for k, v in calls.items() if k != "total"),
            "by_call": {k: v for k, v in sorted(calls.items()) if k != "total"},
        }
    for s in pids:
        out.setdefault(s, "not counted (supervisor pid not found)")
    return out


class PortableIdle:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.window = 6.0 if bench.quick else 30.0  # 30 polls of the portable layer in --quick
        self.trace_window = 4.0 if bench.quick else 20.0

    def run(self) -> None:
        b = self.bench
        for n in (1, 50):
            log(f"portable idle N={n} smart daemons: attachdaemon and {PORTABLE}, {self.window:.0f}s window")
            smart = [(f"d{i}", "smart") for i in range(n)]
            insts = b.start_all([b.new(s, f"p{n}", smart) for s in ("attachdaemon", PORTABLE)])
            for inst in insts:
                layer_check(b, inst)
            b.idle_measure(insts, n, self.window, key="idle_smart")
            counted = wait_calls({i.system: i.supervisor_pid() for i in insts}, self.trace_window)
            for s, v in counted.items():
                b.put(f"idle_smart_{n}_calls", s, v)
                if isinstance(v, dict):
                    log(f"  N={n} {s}: {v['wait_calls']} waiting calls in {v['window_s']:.0f}s")
                else:
                    log(f"  N={n} {s}: {v}")
            for inst in insts:
                b.close(inst)
