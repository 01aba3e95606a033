"""A ``Supervisor`` built on a fake clock and a fake OS, fed a history of events: the spawns and
signals it makes, in order, are the assertion. No process is started."""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.engine.states import State
from attachdaemon_core.engine.supervisor import Supervisor
from tests.unit.fake_os import OWNER, SUPERVISOR, FakeClock, FakeOS, replay, turn

pytestmark = pytest.mark.unit


def decl(*names: str) -> dict[str, Any]:
    return {
        "specs": [{"name": n, "command": [n], "log": "raw", "min_uptime": 1.0} for n in names],
        "env": {},
    }


@pytest.fixture
def sup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Supervisor, FakeOS, FakeClock]]:
    with replay(tmp_path, monkeypatch) as replayed:
        yield replayed


def test_replayed_history__declare_crash_backoff_reload_stop(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    s, fake, clock = sup
    s.answers.add_owner({"pid": OWNER}, decl("web", "worker"))
    s.timers.run_due()  # the declarations apply right after the answer
    assert fake.calls == [("spawn", "web", 5001), ("spawn", "worker", 5002)]
    assert s.daemons["worker"].state == State.RUNNING

    # worker crashes at once, twice: an immediate restart, then a backoff
    fake.calls.clear()
    clock.now += 0.1
    fake.exit(5002, code=1)
    s._reap()
    assert fake.calls == [("spawn", "worker", 5003)]
    clock.now += 0.1
    fake.exit(5003, code=1)
    s._reap()
    assert s.daemons["worker"].state == State.BACKOFF
    assert fake.calls == [("spawn", "worker", 5003)]  # nothing before the backoff timer fires
    clock.now += 0.05
    s.timers.run_due()
    assert s.daemons["worker"].state == State.BACKOFF  # 0.1 s ± 10 %: not yet
    clock.now += 0.1
    s.timers.run_due()
    assert fake.calls[-1] == ("spawn", "worker", 5004)
    assert s.daemons["worker"].state == State.RUNNING

    # a reload that no longer declares web: web is stopped, worker left as it is (no policy)
    fake.calls.clear()
    s.answers.reload_owner({"pid": OWNER}, decl("worker"), policies=False)
    assert fake.calls == [("signal", "web", 5001, "SIGTERM")]
    fake.exit(5001, sig=signal.SIGTERM)
    s._reap()
    assert "web" not in s.daemons

    # the owner goes: the final stop stops worker, and the supervisor may exit once it is gone
    fake.calls.clear()
    s.answers.remove_owner(OWNER, why="exited")
    assert fake.calls == [("signal", "worker", 5004, "SIGTERM")]
    assert not s.exiting
    fake.exit(5004, sig=signal.SIGTERM)
    s._reap()
    assert s.exiting and s.daemons["worker"].state == State.STOPPED
    assert fake.live == {}


def test_replayed_history__a_stop_that_is_ignored_escalates_to_sigkill_on_time(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    s, fake, clock = sup
    s.answers.add_owner({"pid": OWNER}, decl("stubborn"))
    s.timers.run_due()
    fake.calls.clear()
    s.stop(s.daemons["stubborn"])
    timeout = s.daemons["stubborn"].spec.stop_timeout
    clock.now += timeout - 0.01
    s.timers.run_due()
    assert fake.calls == [("signal", "stubborn", 5001, "SIGTERM")]  # not yet escalated
    killed: list[int] = []
    fake.kill_session = lambda sid, sig=signal.SIGKILL: killed.append(sid) or 0  # type: ignore[method-assign]
    clock.now += 0.02
    s.timers.run_due()
    assert killed == [5001]
    fake.exit(5001, sig=signal.SIGKILL)
    s._reap()
    assert s.daemons["stubborn"].state == State.STOPPED


def test_replayed_history__dependency_gate_and_reload_policies(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    """web, declared first, waits for db; a server reload signals one and restarts the other."""
    s, fake, _clock = sup
    specs = [
        {"name": "web", "command": ["web"], "log": "raw", "depends_on": ["db"], "on_reload": "restart"},
        {"name": "db", "command": ["db"], "log": "raw", "on_reload": "signal"},
    ]
    s.answers.add_owner({"pid": OWNER}, {"specs": specs, "env": {}})
    s.timers.run_due()
    assert fake.calls == [("spawn", "db", 5001), ("spawn", "web", 5002)]

    fake.calls.clear()
    s.answers.reload_owner({"pid": OWNER}, {"specs": specs, "env": {}}, policies=True)
    assert fake.calls == [("signal", "web", 5002, "SIGTERM"), ("signal", "db", 5001, "SIGHUP")]
    fake.exit(5002, sig=signal.SIGTERM)
    s._reap()
    assert fake.calls[-1] == ("spawn", "web", 5003)  # restarted once its session is empty
    assert s.daemons["db"].pid == 5001 and s.daemons["web"].state == State.RUNNING
    s.stop(s.daemons["db"])
    s.stop(s.daemons["web"])
    for pid in (5001, 5003):
        fake.exit(pid, sig=signal.SIGTERM)
    s._reap()
    assert fake.live == {}


def test_replayed_history__a_command_probe_runs_through_the_seam_and_gates_its_dependent(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    s, fake, clock = sup
    specs = [
        {"name": "web", "command": ["web"], "log": "raw", "depends_on": ["db"]},
        {"name": "db", "command": ["db"], "log": "raw", "ready": {"command": ["db-ready", "-q"]}},
    ]
    s.answers.add_owner({"pid": OWNER}, {"specs": specs, "env": {}})
    s.timers.run_due()
    turn(s)
    assert fake.calls == [("spawn", "db", 5001), ("spawn", "db-ready", 5002)]
    assert s.daemons["web"].state == State.STARTING and s.daemons["web"].pid is None
    fake.exit(5002, code=1)  # not ready yet: probed again after 0.1 s
    turn(s)
    clock.now += 0.05
    turn(s)
    assert fake.calls[-1] == ("spawn", "db-ready", 5002)
    clock.now += 0.06
    turn(s)
    assert fake.calls[-1] == ("spawn", "db-ready", 5003)
    fake.exit(5003, code=0)
    turn(s)
    assert s.daemons["db"].ready and fake.calls[-1] == ("spawn", "web", 5004)
    assert s.daemons["web"].state == State.RUNNING


def test_replayed_history__leader_holder_and_hooks_through_the_seam(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    """The lock holder is spawned, its events read from its stdout; on "acquired" the on_lead hook
    and the daemon start (with the fencing token), the holder hears of the daemon's session; on
    "lost" the daemon is stopped, then the on_unlead hook runs and the daemon waits on standby."""
    s, fake, clock = sup
    spec = {
        "name": "beat",
        "command": ["beat"],
        "log": "raw",
        "leader": {"lock": "beat-lock", "on_lead": ["lead-hook"], "on_unlead": ["unlead-hook"]},
    }
    s.answers.add_owner({"pid": OWNER}, {"specs": [spec], "env": {}})
    s.timers.run_due()
    d = s.daemons["beat"]
    holder = 5001
    assert fake.calls == [("spawn", sys.executable, holder)] and d.state == State.STANDBY
    info = fake.cmdline(holder)[fake.cmdline(holder).index("--info") + 1]
    assert json.loads(info) == {"host": socket.gethostname(), "pid": SUPERVISOR, "daemon": "beat"}

    fake.say(holder, {"event": "acquired", "d_stop": clock.now + 10.0, "token": 7})
    turn(s)
    assert fake.calls[1:] == [("spawn", "lead-hook", 5002), ("spawn", "beat", 5003)]
    assert d.state == State.RUNNING and b"ATTACHDAEMON_LEADER_TOKEN=7" in fake.procs[5003].env
    assert [m["cmd"] for m in fake.heard(holder)] == ["session"]

    fake.say(holder, {"event": "lost", "reason": "lease lost"})
    turn(s)
    assert fake.calls[-1] == ("signal", "beat", 5003, "SIGTERM")
    fake.exit(5003, sig=signal.SIGTERM)
    turn(s)
    assert fake.calls[-1] == ("spawn", "unlead-hook", 5004)
    assert d.state == State.STANDBY
    s.leadership.drop_all()


def test_replayed_history__a_control_daemon_that_gives_up_asks_the_owner_to_shut_down(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    s, fake, clock = sup
    spec = {"name": "ctl", "command": ["ctl"], "log": "raw", "control": True}
    s.answers.add_owner({"pid": OWNER}, {"specs": [spec], "env": {}})
    s.timers.run_due()
    clock.now += 5.0
    fake.exit(5001, code=2)
    turn(s)
    assert s.daemons["ctl"].state == State.FATAL
    assert fake.calls == [("spawn", "ctl", 5001), ("pidfd_signal", "server", OWNER, "SIGTERM")]


def test_replayed_history__daemons_reaped_in_one_wake_up_share_one_proc_pass(
    sup: tuple[Supervisor, FakeOS, FakeClock],
) -> None:
    """The final stop of many daemons reads /proc once per wake-up, not once per daemon; a pass
    made while a leader still lived is not trusted for it (bench/PROFILE-exec-form.md)."""
    s, fake, _clock = sup
    s.answers.add_owner({"pid": OWNER}, decl("a", "b", "c", "d"))
    s.timers.run_due()
    fake.calls.clear()
    s.answers.remove_owner(OWNER, why="exited")
    for pid in (5001, 5002, 5003):
        fake.exit(pid, sig=signal.SIGTERM)
    s._reap()
    assert fake.scans == 1  # 5004 was alive in it: d is not done yet
    assert [s.daemons[n].state for n in "abc"] == [State.STOPPED] * 3
    assert s.daemons["d"].state == State.STOPPING and not s.exiting
    fake.exit(5004, sig=signal.SIGTERM)
    s._reap()
    assert fake.scans == 2  # a fresh pass for d
    assert s.exiting and s.daemons["d"].state == State.STOPPED
