"""An idle supervisor sleeps: no periodic wake-up when no touch, probe or stop needs a timer."""

from __future__ import annotations

import time
from pathlib import Path

from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, assert_stays, wait_for
from tests.helpers.platform import polls_in


def context_switches(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
            total += int(line.split()[1])
    return total


def test_idle_supervisor_does_not_wake_up(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name=f"s{i}", command=("sleep", "1000")) for i in range(20)])
    wait_for(lambda: all(d["state"] == "running" for d in sandbox.status()["daemons"]), 5, "all running")
    sup = sandbox.supervisor_pid()
    guard = sandbox.guard_pid(sup)
    assert guard is not None
    time.sleep(0.3)  # let the last status connection's teardown finish; we measure a quiet window
    before = context_switches(sup), context_switches(guard)

    def woke() -> str:
        after = context_switches(sup), context_switches(guard)
        return f"woke up {after[0] - before[0]} (supervisor) / {after[1] - before[1]} (guard) times"

    def asleep() -> bool:
        # Not once on linux; on the portable layer without kqueue, only to poll for the owner's exit.
        return context_switches(sup) - before[0] <= polls_in(2.0) and context_switches(guard) == before[1]

    # Read from /proc: looking does not wake them.
    assert_stays(asleep, 2.0, "asleep", show=woke)
