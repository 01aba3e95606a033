"""The event stream's pure parts (docs/monitoring.md): the ring of events, and what a daemon's
record tells it as it changes state, replayed with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from attachdaemon_core.engine.daemon import Daemon, ExitStatus
from attachdaemon_core.engine.events import EVENTS, EventLog
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec

pytestmark = pytest.mark.unit


def test_sequence_numbers_grow_by_one_and_the_ring_keeps_the_last() -> None:
    log = EventLog(size=3, wall=lambda: 100.0)
    for i in range(5):
        log.emit("started", "a", pid=i)
    assert [e["seq"] for e in log.ring] == [3, 4, 5]
    assert log.since(0) == {
        "seq": 5,
        "first": 3,
        "missed": 2,
        "restarted": False,
        "events": list(log.ring),
    }
    assert [e["seq"] for e in log.since(3)["events"]] == [4, 5]
    assert log.since(3)["missed"] == 0
    assert log.since(5)["events"] == []


def test_after_beyond_the_last_number_is_a_client_of_an_earlier_supervisor() -> None:
    log = EventLog()
    log.emit("started", "a")
    answer = log.since(40)
    assert answer["restarted"] is True and [e["seq"] for e in answer["events"]] == [1]


def test_listeners_hear_each_event_and_a_failing_one_is_dropped() -> None:
    log = EventLog()
    heard: list[dict[str, Any]] = []
    stop = log.subscribe(heard.append)

    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("bug")

    log.subscribe(broken)
    log.emit("ready", "a")
    assert [e["event"] for e in heard] == ["ready"]
    assert log.listeners == [heard.append]
    stop()
    log.emit("stopped", "a")
    assert len(heard) == 1 and log.listeners == []


def run(d: Daemon, pid: int, now: float) -> None:
    d.mark_started(pid, now, 1000.0 + now)
    d.set_state(State.RUNNING)
    d.ready = True


def test_a_daemon_tells_start_crash_backoff_and_fatal_in_order() -> None:
    log = EventLog(wall=lambda: 0.0)
    d = Daemon(DaemonSpec(name="a", command=("x",), max_retries=1), rand=lambda: 0.5, events=log)
    d.set_state(State.STARTING)
    run(d, 10, 0.0)
    decision = d.decide_after_exit(ExitStatus(3, None, 1.0), 0.1, stopping=False)
    assert [e["event"] for e in log.ring] == ["started", "ready"]  # a decision emits nothing itself
    d.tell(decision)
    d.set_state(decision.state)
    d.set_state(State.STARTING)
    run(d, 11, 0.2)
    decision = d.decide_after_exit(ExitStatus(None, 9, 1.0), 0.3, stopping=False)
    d.tell(decision)
    d.set_state(decision.state)
    got = [
        (e["event"], {k: v for k, v in e.items() if k not in ("seq", "at", "event", "daemon")})
        for e in log.ring
    ]
    assert got == [
        ("started", {"pid": 10, "adopted": False}),
        ("ready", {"pid": 10}),
        ("exited", {"pid": 10, "code": 3, "signal": None, "status": "exited with status 3"}),
        ("restarting", {"delay": decision_delay(d), "quick_deaths": 1}),
        ("started", {"pid": 11, "adopted": False}),
        ("ready", {"pid": 11}),
        ("exited", {"pid": 11, "code": None, "signal": 9, "status": "was killed by SIGKILL"}),
        ("fatal", {"reason": "was killed by SIGKILL; gave up after 1 quick restarts"}),
    ]
    assert {e["event"] for e in log.ring} <= set(EVENTS)


def decision_delay(d: Daemon) -> float:
    from attachdaemon_core.engine.decide.backoff import backoff_delay

    return round(backoff_delay(1, d.spec, lambda: 0.5), 3)


def test_a_stop_is_told_once_and_not_as_an_exit() -> None:
    log = EventLog()
    d = Daemon(DaemonSpec(name="a", command=("x",)), events=log)
    d.set_state(State.STARTING)
    run(d, 10, 0.0)
    d.set_state(State.STOPPING)
    decision = d.decide_after_exit(ExitStatus(None, None, 1.0), 5.0, stopping=True)
    assert decision.events == () and not decision.ready  # a stop has nothing to tell but its own
    d.set_state(State.STOPPED, "stopped by command")
    d.set_state(State.STOPPED)
    assert [e["event"] for e in log.ring] == ["started", "ready", "stopped"]
    assert log.ring[-1]["reason"] == "stopped by command"


def test_a_failed_start_is_told_with_its_reason_not_as_an_exit() -> None:
    log = EventLog()
    d = Daemon(DaemonSpec(name="a", command=("x",)), rand=lambda: 0.5, events=log)
    d.set_state(State.STARTING)
    decision = d.decide_after_spawn_failure("no such program 'x'", 0.0)
    assert not log.ring  # told by the caller
    d.tell(decision)
    assert [e["event"] for e in log.ring] == ["start-failed", "restarting"]
    assert log.ring[0]["reason"] == "no such program 'x'"


def test_a_daemon_without_an_event_log_tells_nobody() -> None:
    d = Daemon(DaemonSpec(name="a", command=("x",)))
    d.set_state(State.STARTING)
    run(d, 10, 0.0)
    assert d.ready is True and d.events is None
