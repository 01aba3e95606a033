"""Jobs under a real supervisor (docs/events.md, "Jobs"): runs are real processes on a
seconds-resolution schedule (a 6-field expression), so nothing waits for real minutes.
``unique`` skips, ``timeout`` stops then kills, ``start`` runs now, and an idle supervisor with
a job far ahead never wakes up. (Two hosts on one lock: tests/leader/test_leader_jobs.py.)"""

from __future__ import annotations

import io
import itertools
import time

from attachdaemon_core.hosts.commands import wait_ready
from attachdaemon_core.hosts.status import format_table, public_status
from attachdaemon_core.spec.model import DaemonSpec
from tests.core.test_idle import context_switches
from tests.helpers.harness import Sandbox, assert_stays, probe, wait_for
from tests.helpers.status_json import check_status_json


def job(name: str, command: tuple[str, ...], schedule: str, **kw: object) -> DaemonSpec:
    return DaemonSpec(name=name, command=command, schedule=schedule, on_reload="keep", **kw)  # type: ignore[arg-type]


def spans(sandbox: Sandbox, name: str) -> list[tuple[int, int, int]]:
    """(start ns, end ns, pid) of each run, from the probe's events (end: its EXIT/STOP, or now)."""
    out: dict[int, list[int]] = {}
    for ns, n, what, pid in sandbox.events.lines():
        if n != name:
            continue
        if what == "START":
            out[pid] = [ns, time.monotonic_ns()]
        elif pid in out and (what.startswith("EXIT") or what == "STOP"):
            out[pid][1] = ns
    return sorted((a, b, pid) for pid, (a, b) in out.items())


def test_a_job_runs_at_each_slot_and_status_shows_its_runs(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [job("tick", probe(sandbox.events, "tick", "--exit-after", "0.1"), "*/2 * * * * *")])
    assert sandbox.daemon("tick")["state"] == "scheduled"  # declared: nothing runs before its slot
    wait_for(lambda: len(sandbox.events.starts("tick")) >= 3, 10, "three runs")
    times = sandbox.events.start_times("tick")[:3]
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
    assert all(1.5 < g < 2.5 for g in gaps), gaps  # every 2 s, not more often, none skipped
    d = wait_for(lambda: (x := sandbox.daemon("tick"))["state"] == "scheduled" and x, 5, "between runs")
    info = d["job"]
    assert info["runs"] >= 3 and info["skipped"] == 0 and info["timed_out"] == 0 and info["missed"] == 0
    assert info["last_exit"]["code"] == 0 and 0.05 < info["last_duration"] < 1.5
    assert time.time() < info["next_run"] <= time.time() + 2.1
    assert info["schedule"] == "*/2 * * * * *" and info["timezone"] is None
    check_status_json(public_status(sandbox.status()))


def test_unique__a_run_due_while_the_previous_runs_is_skipped(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    long_run = probe(sandbox.events, "slow", "--exit-after", "2.5")
    sandbox.join(owner, [job("slow", long_run, "* * * * * *", unique=True)])
    wait_for(lambda: sandbox.daemon("slow")["job"]["skipped"] >= 3, 10, "skipped runs")
    wait_for(lambda: len(sandbox.events.starts("slow")) >= 2, 10, "a second run after the first ended")
    runs = spans(sandbox, "slow")
    for (_a1, b1, p1), (a2, _b2, p2) in itertools.pairwise(runs):
        assert a2 > b1, f"run {p2} started before run {p1} ended"
    assert "still runs; this run is skipped (unique)" in sandbox.log_text()


def test_not_unique__a_run_due_while_the_previous_runs_starts_when_it_ends(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [job("q", probe(sandbox.events, "q", "--exit-after", "1.5"), "* * * * * *")])
    wait_for(lambda: len(sandbox.events.starts("q")) >= 2, 10, "the queued run")
    (_a1, b1, _p1), (a2, _b2, _p2) = spans(sandbox, "q")[:2]
    assert 0 < (a2 - b1) / 1e9 < 0.5  # right after the first ended, not alongside it
    assert sandbox.daemon("q")["job"]["skipped"] == 0


def test_timeout__a_run_is_stopped_then_killed(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    stubborn = probe(sandbox.events, "hang", "--ignore-term")
    polite = probe(sandbox.events, "nap")
    sandbox.join(
        owner,
        [
            job("hang", stubborn, "*/3 * * * * *", timeout=0.5, stop_timeout=0.5),
            job("nap", polite, "*/3 * * * * *", timeout=0.5),
        ],
    )
    hang = wait_for(
        lambda: (j := sandbox.daemon("hang")["job"])["timed_out"] >= 1 and j["last_exit"] and j, 10, "hang"
    )
    nap = wait_for(
        lambda: (j := sandbox.daemon("nap")["job"])["timed_out"] >= 1 and j["last_exit"] and j, 10, "nap"
    )
    assert hang["last_exit"]["signal"] == 9 and 0.9 < hang["last_duration"] < 2.0  # TERM ignored: KILL
    assert nap["last_exit"]["code"] == 0 and 0.4 < nap["last_duration"] < 1.2  # the probe exits on TERM
    assert 15 in sandbox.events.signals("hang") and 15 in sandbox.events.signals("nap")
    assert sandbox.daemon("hang")["state"] in ("scheduled", "running")  # and it is still scheduled
    assert "ran longer than its timeout of 0.5s; stopping it" in sandbox.log_text()


def test_start__runs_a_job_now_and_stop_holds_its_schedule(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [job("yearly", probe(sandbox.events, "yearly", "--exit-after", "0.1"), "0 0 1 1 *")])
    assert sandbox.daemon("yearly")["job"]["runs"] == 0
    sandbox.call("start", names=["yearly"])
    wait_for(lambda: sandbox.daemon("yearly")["job"]["last_exit"] is not None, 5, "the run's end")
    d = sandbox.daemon("yearly")
    assert d["job"]["runs"] == 1 and d["state"] == "scheduled" and len(sandbox.events.starts("yearly")) == 1
    table = format_table(sandbox.status())
    assert "yearly  job" in table and "scheduled" in table, table
    assert "  yearly: schedule '0 0 1 1 *', next run " in table and "; last run exit 0 after " in table, table
    assert table.rstrip().endswith("runs 1, skipped 0, timed out 0"), table
    sandbox.call("stop", names=["yearly"])
    assert sandbox.daemon("yearly")["state"] == "stopped"


def test_an_idle_supervisor_with_a_job_far_ahead_does_not_wake_up(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [job("yearly", ("true",), "0 0 1 1 *")])
    sup = sandbox.supervisor_pid()
    time.sleep(0.3)  # the status connection's teardown
    before = context_switches(sup)
    assert_stays(lambda: context_switches(sup) == before, 2.0, "the supervisor asleep")


def test_wait_ready_does_not_wait_for_a_job(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [job("yearly", ("true",), "0 0 1 1 *"), DaemonSpec(name="up", command=("sleep", "600"))]
    sandbox.join(owner, specs)
    started = time.monotonic()
    assert wait_ready(sandbox.runtime_dir, 10, io.StringIO(), specs)
    assert time.monotonic() - started < 5
