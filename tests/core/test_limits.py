"""Limits (issue 13 §4) with real daemons under a real supervisor: a daemon whose process tree
grows past ``max_rss`` is restarted, ``max_lifetime`` restarts on plan, each says why in status
and the log; the ``max_rss`` timer costs one wake-up per interval for any number of daemons and
nothing at all when no daemon declares it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from attachdaemon_core.hosts.status import format_table
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import DaemonSpec
from tests.core.test_idle import context_switches
from tests.helpers.harness import Sandbox, alive, assert_stays, wait_for
from tests.helpers.platform import polls_in

DAEMON = str(Path(__file__).parent.parent / "helpers" / "notify_daemon.py")


def test_a_tree_over_max_rss_is_restarted_with_the_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    work = tmp_path / "mem"
    work.mkdir()
    # The memory grows in a child of the daemon (a shell running python): the tree is measured.
    child = f"{sys.executable} {DAEMON} {work} --alloc-mib 96"
    decl = {
        "command": ["/bin/sh", "-c", f"{child} & wait"],
        "max_rss": "64M",
        "limit_check_interval": 0.2,
    }
    sandbox.join(sandbox.owner(), parse_declarations({"big": decl}))
    first = wait_for(lambda: sandbox.running("big"), 5, "running")
    sandbox.extra_pids.add(first)
    wait_for(lambda: len([p for p in work.iterdir() if p.name.startswith("pid-")]) == 1, 5, "child up")
    assert_stays(  # three checks under the limit
        lambda: sandbox.running("big") == first and sandbox.daemon("big")["restart_cause"] is None,
        0.6,
        "big running unrestarted",
        show=lambda: sandbox.daemon("big"),
    )
    (work / "alloc").touch()
    second = wait_for(lambda: (p := sandbox.running("big")) and p != first and p, 10, "restarted")
    sandbox.extra_pids.add(second)
    (work / "alloc").unlink()  # the next run stays small
    cause = sandbox.daemon("big")["restart_cause"]
    assert cause["limit"] == "max_rss"
    assert cause["detail"].startswith("max_rss: resident memory ")
    assert cause["detail"].endswith(" MiB is over the limit of 64.0 MiB")
    assert f"daemon 'big' (pid {first}) max_rss: resident memory " in sandbox.log_text()
    wait_for(lambda: not alive(first), 5, "the big run ended")
    assert sandbox.daemon("big")["restarts"] == 1


def test_max_lifetime_restarts_on_plan_and_says_so(sandbox: Sandbox) -> None:
    sandbox.join(sandbox.owner(), parse_declarations({"old": {"command": "sleep 60", "max_lifetime": 1.5}}))
    first = wait_for(lambda: sandbox.running("old"), 5, "running")
    sandbox.extra_pids.add(first)
    started = time.monotonic()
    second = wait_for(lambda: (p := sandbox.running("old")) and p != first and p, 10, "restarted")
    sandbox.extra_pids.add(second)
    assert time.monotonic() - started > 1.0
    cause = sandbox.daemon("old")["restart_cause"]
    assert cause["limit"] == "max_lifetime"
    assert cause["detail"] == "max_lifetime: ran for 1.5s, its planned restart"
    assert f"daemon 'old' (pid {first}) max_lifetime: ran for 1.5s, its planned restart; restarting it" in (
        sandbox.log_text()
    )
    assert ", max_lifetime: ran for 1.5s, its planned restart" in format_table(sandbox.status())


def voluntary_switches(pid: int) -> int:
    """Times the process blocked (in epoll_wait, here): its wake-ups, not the scheduler's preemptions."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def _wakeups(sandbox: Sandbox, specs: list[DaemonSpec], window: float) -> int:
    sandbox.join(sandbox.owner(), specs)
    wait_for(lambda: all(d["state"] == "running" for d in sandbox.status()["daemons"]), 10, "all running")
    sup = sandbox.supervisor_pid()
    time.sleep(0.3)  # let the last status connection's teardown finish; we measure a quiet window
    before = voluntary_switches(sup), context_switches(sup)
    time.sleep(window)
    if specs[0].max_rss is None:  # none at all, not even a preemption
        return context_switches(sup) - before[1]
    return voluntary_switches(sup) - before[0]


def test_max_rss_on_50_daemons_wakes_once_per_interval(sandbox: Sandbox) -> None:
    specs = [
        DaemonSpec(name=f"m{i}", command=("sleep", "1000"), max_rss=512 << 20, limit_check_interval=0.5)
        for i in range(50)
    ]
    woke = _wakeups(sandbox, specs, 3.0)
    # 6 checks in 3 s, each one wake-up (one timer for all 50); a little slack for the scheduler.
    # (Plus, on the portable layer without kqueue, the owner's exit polling: documented.)
    assert 4 <= woke <= 10 + polls_in(3.0), (
        f"{woke} wake-ups in 3 s with max_rss on 50 daemons (interval 0.5 s)"
    )


def test_no_limit_declared_no_wakeup(sandbox: Sandbox) -> None:
    specs = [DaemonSpec(name=f"s{i}", command=("sleep", "1000")) for i in range(50)]
    assert _wakeups(sandbox, specs, 2.0) <= polls_in(2.0)  # (0 but for portable's exit polling)


def test_restart_at_restarts_at_the_wall_clock_minute_and_says_so(sandbox: Sandbox) -> None:
    """``restart_at`` with a real clock: the next whole minute (or the one after, when it is too
    close to start the daemon first), so the test waits at most about 65 s."""
    now = time.time()
    target = (int(now) // 60 + 1) * 60
    if target - now < 5:
        target += 60
    at = time.strftime("%H:%M", time.localtime(target))
    sandbox.join(sandbox.owner(), parse_declarations({"nightly": {"command": "sleep 600", "restart_at": at}}))
    first = wait_for(lambda: sandbox.running("nightly"), 5, "running")
    sandbox.extra_pids.add(first)
    second = wait_for(
        lambda: (p := sandbox.running("nightly")) and p != first and p,
        target - time.time() + 10,
        f"restarted at {at}",
    )
    sandbox.extra_pids.add(second)
    assert time.time() >= target  # not before the planned minute
    cause = sandbox.daemon("nightly")["restart_cause"]
    assert cause["limit"] == "restart_at" and cause["at"] >= target
    assert cause["detail"] == f"restart_at: its planned restart at {at}"
    assert f"daemon 'nightly' (pid {first}) restart_at: its planned restart at {at}" in sandbox.log_text()
