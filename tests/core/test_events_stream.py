"""docs/monitoring.md, "The event stream": ``attachdaemon events`` against a real supervisor and
real daemons: follow mode sees a crash and its restart in order, ``--after N`` resumes without
gaps or duplicates, and a follower costs the idle supervisor no wake-up (push, not poll)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.spec.model import DaemonSpec
from tests.core.test_idle import context_switches
from tests.helpers.harness import Sandbox, assert_stays, probe, wait_for

CLI = [sys.executable, "-m", "attachdaemon_core"]


class Follower:
    """``attachdaemon events -f --json [--after N]`` as a real process; its lines read as they come."""

    def __init__(self, box: Sandbox, *extra: str) -> None:
        env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": box.runtime_dir}
        self.err_path = box.tmp / f"follower-{time.monotonic_ns()}.err"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*CLI, "-c", str(box.tmp / "none.toml"), "events", "-f", "--json", *extra],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def seen(self, event: str, daemon: str, after_seq: int = 0) -> dict[str, Any] | None:
        for e in list(self.events):
            if e["event"] == event and e.get("daemon") == daemon and e["seq"] > after_seq:
                return e
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()


def cli_events(box: Sandbox, *extra: str) -> list[dict[str, Any]]:
    env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": box.runtime_dir}
    out = subprocess.run(
        [*CLI, "-c", str(box.tmp / "none.toml"), "events", "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def assert_contiguous(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gaps or duplicates: {seqs}"


def test_follow_sees_a_crash_and_its_restart_in_order(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="a", command=probe(sandbox.events, "a"))])
    first = wait_for(lambda: sandbox.running("a"), 5, "a running")
    follower = Follower(sandbox)
    try:
        started = wait_for(lambda: follower.seen("started", "a"), 10, "the backlog's started")
        ready = wait_for(lambda: follower.seen("ready", "a"), 10, "the backlog's ready")
        assert started["pid"] == first and started["seq"] < ready["seq"]
        os.kill(first, signal.SIGKILL)
        again = wait_for(lambda: follower.seen("ready", "a", ready["seq"]), 10, "a ready again")
        tail = [e for e in follower.events if ready["seq"] < e["seq"] <= again["seq"]]
        names = [e["event"] for e in tail]
        assert names == ["exited", "restarting", "started", "ready"], tail
        exited = tail[0]
        assert exited["pid"] == first and exited["signal"] == signal.SIGKILL and exited["code"] is None
        assert again["pid"] == tail[2]["pid"] == sandbox.running("a") != first
        assert tail[1]["delay"] == 0  # a first death after min_uptime: restarted at once
        assert_contiguous(follower.events)
    finally:
        assert follower.stop() == 0


def test_after_n_resumes_without_gaps_or_duplicates(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="a", command=probe(sandbox.events, "a"))])
    wait_for(lambda: sandbox.running("a"), 5, "a running")
    first = Follower(sandbox)
    try:
        wait_for(lambda: first.seen("ready", "a"), 10, "a ready in the stream")
    finally:
        assert first.stop() == 0
    last = first.events[-1]["seq"]
    # What happens while nobody follows: a restart by command, a kill.
    sandbox.call("restart", names=["a"])
    pid = wait_for(lambda: sandbox.events.starts("a")[1:] and sandbox.running("a"), 10, "a restarted")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(sandbox.events.starts("a")) == 3 and sandbox.running("a"), 10, "a back")
    second = Follower(sandbox, "--after", str(last))
    try:
        wait_for(lambda: second.seen("started", "a") and len(second.events) >= 6, 10, "the missed events")
        assert second.events[0]["seq"] == last + 1
        combined = first.events + second.events
        assert_contiguous(combined)
        assert combined == cli_events(sandbox)[: len(combined)]
        kinds = [e["event"] for e in second.events]
        assert kinds[:2] == ["stopped", "started"], kinds
        assert "exited" in kinds and "restarting" in kinds
        # and --after without -f: exactly the tail
        assert cli_events(sandbox, "--after", str(last + 2)) == [
            e for e in cli_events(sandbox) if e["seq"] > last + 2
        ]
    finally:
        assert second.stop() == 0


def test_a_follower_is_pushed_to_and_costs_no_wakeup(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="s", command=("sleep", "1000"))])
    wait_for(lambda: sandbox.running("s"), 5, "s running")
    sup = sandbox.supervisor_pid()
    follower = Follower(sandbox)
    try:
        wait_for(lambda: follower.seen("ready", "s"), 10, "the backlog")
        time.sleep(1.5)  # past the request sweep's 1-s timer of the connections just closed
        before = context_switches(sup)
        assert_stays(
            lambda: context_switches(sup) == before,
            2.0,
            "the supervisor asleep with a follower connected",
            show=lambda: f"woke {context_switches(sup) - before} times",
        )
        pid = sandbox.running("s")
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: follower.seen("exited", "s"), 5, "the exit pushed")
        assert time.monotonic() - t0 < 1.0
    finally:
        assert follower.stop() == 0


def test_events_without_a_supervisor_exit_4(tmp_path: Path) -> None:
    env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": str(tmp_path / "nothing")}
    for follow in ([], ["-f"]):
        out = subprocess.run(
            [*CLI, "-c", str(tmp_path / "none.toml"), "events", *follow],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert out.returncode == 4, out
        assert "no supervisor answers" in out.stderr


def test_log_format_json_makes_each_supervisor_log_line_an_object(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTACHDAEMON_LOG_FORMAT", "json")  # the server's environment
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="a", command=probe(sandbox.events, "a"))])
    pid = wait_for(lambda: sandbox.running("a"), 5, "a running")
    sup = sandbox.supervisor_pid()
    wait_for(lambda: f"daemon 'a' started (pid {pid})" in sandbox.log_text(), 5, "the start logged")
    lines = [json.loads(line) for line in sandbox.log_text().splitlines()]
    started = [x for x in lines if x["message"] == f"daemon 'a' started (pid {pid})"]
    assert started and started[0]["level"] == "info" and started[0]["pid"] == sup
    assert all(set(x) >= {"at", "level", "pid", "message"} for x in lines)
