"""docs/monitoring.md, jobs: the ``attachdaemon_cron_*`` metrics read back with prometheus_client's
parser and checked against ``status``, and the ``job-run``, ``job-skip`` and ``job-timeout``
events of real runs on a seconds-resolution schedule (docs/events.md, "Jobs")."""

from __future__ import annotations

from typing import Any

from attachdaemon_core.hosts.status import public_status
from tests.core.test_events_stream import cli_events
from tests.core.test_jobs import job
from tests.core.test_metrics import scrape
from tests.helpers.harness import Sandbox, probe, wait_for
from tests.helpers.status_json import check_status_json

OUTCOMES = {"success": "succeeded", "failure": "failed", "timed_out": "timed_out", "skipped": "skipped"}


def jobs_of(box: Sandbox) -> dict[str, dict[str, Any]]:
    return {d["name"]: d["job"] for d in box.status()["daemons"] if d["job"] is not None}


def test_cron_metrics_count_each_outcome_and_the_last_success(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(
        owner,
        [
            job("tick", probe(sandbox.events, "tick", "--exit-after", "0.1"), "* * * * * *"),
            job("bad", probe(sandbox.events, "bad", "--exit-after", "0", "--code", "3"), "* * * * * *"),
            job("slow", probe(sandbox.events, "slow", "--exit-after", "2.5"), "* * * * * *", unique=True),
            job("hang", probe(sandbox.events, "hang"), "*/2 * * * * *", timeout=0.3),
        ],
    )
    wait_for(
        lambda: (
            (j := jobs_of(sandbox))["tick"]["succeeded"] >= 2
            and j["bad"]["failed"] >= 2
            and j["slow"]["skipped"] >= 1
            and j["hang"]["timed_out"] >= 1
        ),
        15,
        "every outcome at least once",
    )
    before = jobs_of(sandbox)
    samples = scrape(sandbox)
    after = jobs_of(sandbox)
    check_status_json(public_status(sandbox.status()))
    runs = samples["attachdaemon_cron_runs_total"]
    last = samples["attachdaemon_cron_last_success_timestamp_seconds"]
    for name in ("tick", "bad", "slow", "hang"):
        for outcome, key in OUTCOMES.items():
            value = runs[(("job", name), ("outcome", outcome))]
            assert before[name][key] <= value <= after[name][key], (name, outcome, value)
    assert runs[(("job", "tick"), ("outcome", "success"))] >= 2
    assert runs[(("job", "bad"), ("outcome", "failure"))] >= 2
    assert runs[(("job", "bad"), ("outcome", "success"))] == 0
    assert runs[(("job", "slow"), ("outcome", "skipped"))] >= 1
    assert runs[(("job", "hang"), ("outcome", "timed_out"))] >= 1
    assert runs[(("job", "hang"), ("outcome", "success"))] == 0  # a timed-out run is counted once
    # The last success: the end of tick's last run that exited 0; no series for a job without one.
    assert before["tick"]["last_success"] <= last[(("job", "tick"),)] <= after["tick"]["last_success"]
    assert (("job", "bad"),) not in last and (("job", "hang"),) not in last
    assert after["bad"]["last_success"] is None and after["bad"]["last_exit"]["code"] == 3


def test_job_events_tell_each_run_skip_and_timeout(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(
        owner,
        [
            job("tick", probe(sandbox.events, "tick", "--exit-after", "0.1"), "* * * * * *"),
            job("slow", probe(sandbox.events, "slow", "--exit-after", "2.5"), "* * * * * *", unique=True),
            job("nap", probe(sandbox.events, "nap"), "*/2 * * * * *", timeout=0.3),
            job("yearly", probe(sandbox.events, "yearly", "--exit-after", "0.1"), "0 0 1 1 *"),
        ],
    )
    sandbox.call("start", names=["yearly"])
    wait_for(
        lambda: (
            (j := jobs_of(sandbox))["slow"]["skipped"] >= 1
            and j["nap"]["timed_out"] >= 1
            and j["tick"]["succeeded"] >= 2
            and j["yearly"]["succeeded"] == 1
        ),
        15,
        "runs, a skip and a timeout",
    )
    events = cli_events(sandbox)

    def of(name: str) -> list[dict[str, Any]]:
        return [e for e in events if e.get("daemon") == name]

    tick = [e["event"] for e in of("tick")]
    assert tick[:4] == ["job-run", "started", "ready", "exited"], tick
    assert "restarting" not in tick  # a job's next run is its schedule's, not a restart
    assert [e["trigger"] for e in of("tick") if e["event"] == "job-run"][:2] == ["schedule", "schedule"]
    exited = next(e for e in of("tick") if e["event"] == "exited")
    assert exited["code"] == 0 and exited["pid"] == sandbox.events.starts("tick")[0]
    yearly = of("yearly")
    assert [e["event"] for e in yearly][:4] == ["job-run", "started", "ready", "exited"], yearly
    assert yearly[0]["trigger"] == "start"
    skip = next(e for e in of("slow") if e["event"] == "job-skip")
    started = [e for e in of("slow") if e["event"] == "started" and e["seq"] < skip["seq"]][-1]
    assert skip["pid"] == started["pid"]  # the run that still ran
    nap = of("nap")
    timeout = next(e for e in nap if e["event"] == "job-timeout")
    assert timeout["timeout"] == 0.3 and timeout["pid"] == sandbox.events.starts("nap")[0]
    after = [e["event"] for e in nap if e["seq"] > timeout["seq"]]
    assert after[0] == "stopped", nap  # then stopped, not "exited": the supervisor ended it
