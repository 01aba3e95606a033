"""A ``Supervisor`` built on a fake clock and a fake OS, fed a history of events: the spawns and
signals it makes, in order, are the assertion. No process is started."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.states import State
from attachdaemon_core.engine.supervisor import Supervisor
from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.spawn import SpawnRequest

pytestmark = pytest.mark.unit

OWNER = 4000


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeOS(RealOS):
    """Processes that exist only in this table; every call that acts on one is logged."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    live: dict[int, str] = field(default_factory=dict)  # pid -> daemon command
    waiting: list[tuple[int, int]] = field(default_factory=list)  # exits not reaped yet
    next_pid: int = 5000
    fds: list[int] = field(default_factory=list)  # real fds standing in for pidfds

    # -- what a test makes happen
    def exit(self, pid: int, *, code: int = 0, sig: int | None = None) -> None:
        del self.live[pid]
        self.waiting.append((pid, sig if sig is not None else code << 8))

    # -- the seam
    def spawn(self, req: SpawnRequest) -> int:
        self.next_pid += 1
        self.live[self.next_pid] = req.argv[0]
        self.calls.append(("spawn", req.argv[0], self.next_pid))
        return self.next_pid

    def reap_one(self) -> tuple[int, int] | None:
        return self.waiting.pop(0) if self.waiting else None

    def stat(self, pid: int) -> proc.Stat | None:
        if pid != OWNER and pid not in self.live:
            return None
        return proc.Stat(pid, "x", "S", 1, pid, pid, 0, 0, 1000 + pid, 0)

    def proc_pids(self) -> list[int]:
        return [OWNER, *self.live]

    def session_members(self, sid: int) -> list[int]:
        return [sid] if sid in self.live else []

    def group_exists(self, pgid: int) -> bool:
        return pgid in self.live

    def signal_group(self, pgid: int, sig: int) -> bool:
        self.calls.append(("signal", self.live.get(pgid), pgid, signal.Signals(sig).name))
        return pgid in self.live

    def kill_session(self, sid: int, sig: int = signal.SIGKILL) -> int:
        return 0  # the fake's sessions hold only their leader

    def pidfd_open(self, pid: int) -> int | None:
        r, w = os.pipe()
        os.close(w)  # (readable at once: the owner's pidfd is never polled here)
        self.fds.append(r)
        return r

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)


def decl(*names: str) -> dict[str, Any]:
    return {
        "specs": [{"name": n, "command": [n], "log": "raw", "min_uptime": 1.0} for n in names],
        "env": {},
    }


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[tuple[Supervisor, FakeOS, FakeClock]]:
    clock, fake = FakeClock(), FakeOS()
    s = Supervisor(str(tmp_path), clock=clock, os=fake)
    s.open_watcher()
    yield s, fake, clock
    for fd in fake.fds:
        os.close(fd)
    s.selector.close()


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
