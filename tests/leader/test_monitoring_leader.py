"""docs/monitoring.md with leader daemons: two "hosts" (runtime directories) on one file lock;
``leader-acquired`` in each one's event stream as it takes the lock, and ``attachdaemon_leader``
showing each host's role, read back with prometheus_client's parser."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from attachdaemon_core.hosts.metrics import render_answer
from attachdaemon_core.spec.model import DaemonSpec, LeaderSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.leader.conftest import unique_name
from tests.leader.test_supervised import _holder_pid


def roles(box: Sandbox, lock: str) -> dict[str, float]:
    text, _ = render_answer(box.call("metrics"))
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == "attachdaemon_leader" and s.labels["lock"] == lock:
                out[s.labels["role"]] = s.value
    return out


def acquired(box: Sandbox) -> list[dict[str, object]]:
    return [e for e in box.call("events")["events"] if e["event"] == "leader-acquired"]


def leader_and_standby(tmp_path: Path, lock: str, boxes: list[Sandbox]) -> tuple[Sandbox, Sandbox]:
    """Two "hosts" (runtime directories) with a ``beat`` leader daemon on one file lock: h1
    leading, h2 on standby. ``boxes`` gets each as it starts, for the caller's cleanup."""
    spec = DaemonSpec(
        name="beat",
        command=("sleep", "1000"),
        leader=LeaderSpec(lock=lock, backend="file", lease=4.0, renew=0.5),
        stop_timeout=0.5,
    )
    for host in ("h1", "h2"):
        (tmp_path / host).mkdir()
        box = Sandbox(tmp_path / host)
        boxes.append(box)
        box.join(box.owner(), [spec])
        if host == "h1":
            wait_for(lambda b=box: b.running("beat"), 15, "h1 leading")
    h1, h2 = boxes
    wait_for(lambda: h2.daemon("beat")["state"] == "standby", 15, "h2 on standby")
    return h1, h2


def test_leader_acquired_events_and_the_leader_metric(tmp_path: Path) -> None:
    lock = unique_name("mon")
    boxes: list[Sandbox] = []
    try:
        h1, h2 = leader_and_standby(tmp_path, lock, boxes)
        assert [e["lock"] for e in acquired(h1)] == [lock] and acquired(h2) == []
        assert wait_for(lambda: roles(h1, lock)["leader"] == 1.0 and roles(h1, lock), 10, "h1's role")
        assert wait_for(lambda: roles(h2, lock)["follower"] == 1.0 and roles(h2, lock), 10, "h2's role")
        assert roles(h1, lock) == {"leader": 1.0, "follower": 0.0, "unknown": 0.0}
        h1.call("stop", names=["beat"])  # h1 lets the lock go: h2 takes it
        wait_for(lambda: h2.running("beat"), 15, "h2 leading")
        assert [e["lock"] for e in acquired(h2)] == [lock]
        kinds = [e["event"] for e in h2.call("events")["events"]]
        assert kinds.index("leader-acquired") < kinds.index("started")
        wait_for(lambda: roles(h2, lock)["leader"] == 1.0, 10, "h2's role now leader")
    finally:
        problems = [p for box in boxes for p in box.cleanup()]
        assert not problems, problems


def test_leader_lost_event_when_the_holder_dies(tmp_path: Path) -> None:
    """The leader's lock holder SIGKILLed: its supervisor tells ``leader-lost`` (with the lock and
    why) in its stream, and the other host takes the lock."""
    lock = unique_name("monlost")
    boxes: list[Sandbox] = []
    try:
        h1, h2 = leader_and_standby(tmp_path, lock, boxes)
        os.kill(_holder_pid(h1), signal.SIGKILL)  # a child of h1's supervisor: ours
        lost = wait_for(
            lambda: [e for e in h1.call("events")["events"] if e["event"] == "leader-lost"],
            15,
            "leader-lost in h1's stream",
        )
        assert lost[0]["lock"] == lock and lost[0]["reason"]
        wait_for(lambda: h2.running("beat"), 15, "h2 leading")
        assert [e["lock"] for e in acquired(h2)] == [lock]
    finally:
        problems = [p for box in boxes for p in box.cleanup()]
        assert not problems, problems
