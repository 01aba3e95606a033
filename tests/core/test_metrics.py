"""docs/monitoring.md, "Prometheus metrics": ``attachdaemon metrics`` against a real supervisor,
its text read back with prometheus_client's own parser and checked against ``status``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.layer import LIVE
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, probe, wait_for

CLI = [sys.executable, "-m", "attachdaemon_core"]


def scrape(box: Sandbox) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``attachdaemon metrics``, parsed: sample name -> labels -> value."""
    env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": box.runtime_dir}
    out = subprocess.run(
        [*CLI, "-c", str(box.tmp / "none.toml"), "metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(out.stdout):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def one(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_metrics_match_status_and_sum_the_process_tree(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(
        owner,
        [
            DaemonSpec(name="tree", command=probe(sandbox.events, "tree", "--grandchild")),
            DaemonSpec(
                name="dies",
                command=probe(sandbox.events, "dies", "--exit-after", "0", "--code", "3"),
                restart="never",
            ),
        ],
    )
    pid = wait_for(lambda: sandbox.running("tree"), 5, "tree running")
    wait_for(lambda: sandbox.daemon("dies")["state"] == "exited", 10, "dies exited")
    grandchild = wait_for(
        lambda: [p for p in proc.session_members(pid) if p != pid], 10, "tree's grandchild"
    )[0]
    os.kill(pid, signal.SIGSTOP)  # hold the tree still while we compare
    try:
        samples = scrape(sandbox)
        status = {d["name"]: d for d in sandbox.status()["daemons"]}
    finally:
        os.kill(pid, signal.SIGCONT)
    assert one(samples, "attachdaemon_supervisor_up") == 1
    tree, dies = status["tree"], status["dies"]
    assert one(samples, "attachdaemon_daemon_up", daemon="tree", kind="attached") == 1
    assert one(samples, "attachdaemon_daemon_up", daemon="dies", kind="attached") == 0
    for state in ("running", "exited", "stopped", "backoff", "fatal"):
        assert one(samples, "attachdaemon_daemon_state", daemon="tree", state=state) == (
            state == tree["state"]
        )
        assert one(samples, "attachdaemon_daemon_state", daemon="dies", state=state) == (
            state == dies["state"]
        )
    assert one(samples, "attachdaemon_daemon_ready", daemon="tree") == 1
    assert one(samples, "attachdaemon_daemon_restarts_total", daemon="tree") == tree["restarts"] == 0
    assert one(samples, "attachdaemon_daemon_start_time_seconds", daemon="tree") == tree["started_at"]
    assert ("daemon", "dies") not in dict(samples["attachdaemon_daemon_start_time_seconds"])
    assert one(samples, "attachdaemon_daemon_last_exit_code", daemon="dies") == dies["last_exit"]["code"] == 3
    # The tree: the daemon and its grandchild, read at scrape time.
    # (Read through the layer the supervisor uses: psutil's rss is statm's, not /proc/PID/stat's.)
    expected_rss = sum(LIVE.stat(p).rss_pages for p in (pid, grandchild)) * proc.PAGE_SIZE  # type: ignore[union-attr]
    assert one(samples, "attachdaemon_daemon_resident_memory_bytes", daemon="tree") == expected_rss
    assert expected_rss > tree["rss_bytes"] > 0  # status shows the daemon's own process only
    cpu = one(samples, "attachdaemon_daemon_cpu_seconds_total", daemon="tree")
    assert cpu >= proc.stat(pid).cpu_seconds  # type: ignore[union-attr]
    # The supervisor's own process_* numbers.
    sup = proc.stat(sandbox.supervisor_pid())
    assert sup is not None
    assert one(samples, "process_resident_memory_bytes") > 0
    assert abs(one(samples, "process_start_time_seconds") - sup.started_at) < 1.0
    assert one(samples, "process_open_fds") > 3
    assert "process_cpu_seconds_total" in samples


def test_metrics_restarts_counter_follows_a_restart(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="a", command=probe(sandbox.events, "a"))])
    first = wait_for(lambda: sandbox.running("a"), 5, "a running")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (sandbox.running("a") or first) != first, 5, "a restarted")
    samples = scrape(sandbox)
    assert one(samples, "attachdaemon_daemon_restarts_total", daemon="a") == 1
    assert one(samples, "attachdaemon_daemon_last_exit_code", daemon="a") == 128 + signal.SIGKILL


def test_metrics_without_a_supervisor_exit_4(tmp_path: Path) -> None:
    env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": str(tmp_path / "nothing")}
    out = subprocess.run(
        [*CLI, "-c", str(tmp_path / "none.toml"), "metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 4 and "no supervisor answers" in out.stderr, out
