"""Smart and smart2 daemons replayed through a ``Supervisor`` on a fake clock and a fake OS
(tests/unit/fake_os.py): launches, pidfiles, adoption, deaths and restarts, and the identity
checks of docs/events.md ("Pidfile cases") and docs/process-model.md ("How a pidfile is
trusted"), which read the fake's process table through the OS seam. The pidfiles and the state
file are real files in the test's directory. No process is started."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.engine.states import State
from attachdaemon_core.engine.supervisor import Supervisor
from tests.unit.fake_os import (
    OWNER,
    SUPERVISOR,
    FakeClock,
    FakeOS,
    end_supervisor,
    new_supervisor,
    replay,
    turn,
)

pytestmark = pytest.mark.unit

PROG = "kvd"  # a made-up daemon: no such program on PATH, so only the names are compared


def smart(pidfile: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "kv",
        "command": [PROG, "--daemonize"],
        "pidfile": str(pidfile),
        "log": "raw",
        "min_uptime": 1.0,
        "start_timeout": 1.0,
        "on_reload": "keep",  # a smart daemon's default, given by the declarations
        **extra,
    }


def declare(s: Supervisor, *specs: dict[str, Any], reload: bool = False) -> None:
    decl = {"specs": list(specs), "env": {}}
    if reload:
        s.answers.reload_owner({"pid": OWNER}, decl, policies=True)
    else:
        s.answers.add_owner({"pid": OWNER}, decl)
        s.timers.run_due()  # the declarations apply right after the answer


def adopt_launch(
    s: Supervisor, fake: FakeOS, clock: FakeClock, pidfile: Path, launcher: int, **fork: Any
) -> int:
    """The launcher daemonizes: its child, in a session of its own, writes the pidfile; a later
    poll of the pidfile (every 5 ms, doubling up to 0.2 s) adopts it. The launcher still lives."""
    daemon = fake.fork(launcher, **fork)
    pidfile.write_text(f"{daemon}\n")
    d = s.daemons["kv"]
    for _ in range(40):
        clock.now += 0.005
        turn(s)
        if d.pid is not None:
            break
    return daemon


@pytest.fixture
def sup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Supervisor, FakeOS, FakeClock]]:
    with replay(tmp_path, monkeypatch) as replayed:
        yield replayed


def test_smart__launched_adopted_from_its_pidfile_then_restarted_after_deaths_with_backoff(
    sup: tuple[Supervisor, FakeOS, FakeClock], tmp_path: Path
) -> None:
    s, fake, clock = sup
    pidfile = tmp_path / "pids" / "kv.pid"
    declare(s, smart(pidfile))
    d = s.daemons["kv"]
    assert fake.calls == [("spawn", PROG, 5001)]
    assert d.state == State.STARTING and d.pid is None and d.launcher_pid == 5001
    assert pidfile.parent.is_dir()  # the missing pidfile directory was created

    # Nothing until the pidfile names the daemon: the launcher exiting 0 is a daemonizing command.
    clock.now += 0.005
    turn(s)
    assert d.state == State.STARTING and d.pid is None
    daemon = adopt_launch(s, fake, clock, pidfile, 5001)
    fake.exit(5001)
    turn(s)
    assert d.state == State.RUNNING and d.pid == daemon == 5002 and d.launcher_pid is None
    assert not d.adopted  # our own launch produced it
    assert s.smart_known[os.path.realpath(pidfile)] == (5002, fake.procs[5002].starttime)
    assert fake.calls == [("spawn", PROG, 5001)]  # nothing signalled

    # It is killed after 0.5 s (a quick death): seen through its pidfd, launched again at once.
    # The pidfile still names the dead pid: not adopted, a new launch.
    clock.now += 0.5
    fake.exit(5002, sig=signal.SIGKILL)
    turn(s)
    assert fake.calls == [("spawn", PROG, 5001), ("spawn", PROG, 5003)]
    assert d.state == State.STARTING and d.pid is None and d.last_exit is not None
    assert d.last_exit.signal == signal.SIGKILL

    daemon = adopt_launch(s, fake, clock, pidfile, 5003)
    assert d.state == State.RUNNING and d.pid == daemon == 5004
    fake.exit(5003)
    turn(s)

    # A second quick death in a row: a backoff (0.1 s ± 10 %) before the next launch.
    clock.now += 0.1
    fake.exit(5004, code=1)
    turn(s)
    assert d.state == State.BACKOFF and fake.calls[-1] == ("spawn", PROG, 5003)
    clock.now += 0.05
    turn(s)
    assert d.state == State.BACKOFF and fake.calls[-1] == ("spawn", PROG, 5003)
    clock.now += 0.1
    turn(s)
    assert fake.calls[-1] == ("spawn", PROG, 5005)
    assert d.state == State.STARTING and d.launcher_pid == 5005
    assert [c for c in fake.calls if c[0] != "spawn"] == []  # no signal in the whole history


def test_smart__a_reused_pid_or_a_stranger_in_the_pidfile_is_neither_adopted_nor_signalled(
    sup: tuple[Supervisor, FakeOS, FakeClock], tmp_path: Path
) -> None:
    s, fake, clock = sup
    pidfile = tmp_path / "pids" / "kv.pid"
    pidfile.parent.mkdir()
    pidfile.write_text("777\n")
    written = time.time() - 30
    os.utime(pidfile, (written, written))
    # pid 777 runs the daemon's program, but started 25 s after the pidfile was written: a reused pid
    fake.stranger(777, (PROG,), started=-5)
    declare(s, smart(pidfile))
    d = s.daemons["kv"]
    assert fake.calls == [("spawn", PROG, 5001)]  # started instead
    assert d.pid is None and d.launcher_pid == 5001

    # While the launch runs, the pidfile names a process that started since, in a session of its
    # own, without the launch's marker: not the launch's, and it runs another program.
    fake.stranger(778, ("bash", "-c", "sleep 1000"), started=0.0)
    pidfile.write_text("778\n")
    for _ in range(40):  # the pidfile is polled until start_timeout (1 s)
        clock.now += 0.05
        turn(s)
    assert d.pid is None
    # The launcher stayed in the foreground: stopped as a failed start, alone.
    assert fake.calls[1:] == [("pidfd_signal", PROG, 5001, "SIGTERM")]
    assert d.state == State.STOPPING and d.error is not None and "daemonize: true" in d.error
    fake.exit(5001, sig=signal.SIGTERM)
    turn(s)
    # A first quick failure: launched again at once, the pidfile (still naming 778) checked first.
    assert fake.calls[2:] == [("spawn", PROG, 5002)]
    assert d.state == State.STARTING and d.pid is None and d.launcher_pid == 5002

    assert fake.signals_to(777) == [] and fake.signals_to(778) == []
    assert 777 in fake.procs and 778 in fake.procs
    assert s.smart_known == {}


def test_smart__kept_across_a_reload_and_adopted_again_by_the_next_supervisor_from_its_state_file(
    sup: tuple[Supervisor, FakeOS, FakeClock], tmp_path: Path
) -> None:
    s, fake, clock = sup
    pidfile = tmp_path / "pids" / "kv.pid"
    declare(s, smart(pidfile))
    # The daemon it forks runs another program with a clean environment: only the launch
    # (its parent is the launcher) and then the state file say it is ours.
    daemon = adopt_launch(s, fake, clock, pidfile, 5001, argv=("kvd-child",), env=frozenset())
    d = s.daemons["kv"]
    assert d.state == State.RUNNING and d.pid == daemon == 5002
    fake.exit(5001)
    turn(s)

    # A server reload with the declaration unchanged: kept running (on_reload: keep).
    declare(s, smart(pidfile), reload=True)
    turn(s)
    assert s.daemons["kv"] is d and d.pid == 5002 and d.state == State.RUNNING
    # The server stops: a smart daemon is kept running, and the supervisor exits.
    s.answers.remove_owner(OWNER, why="exited")
    turn(s)
    assert s.exiting
    s.shutdown_cleanup()
    end_supervisor(s)
    assert fake.calls == [("spawn", PROG, 5001)]  # never signalled
    assert 5002 in fake.procs

    # The next server's supervisor adopts it again: pid and start time are in the state file.
    s2 = new_supervisor(tmp_path / "run", clock, fake)
    try:
        s2.state.restore()
        declare(s2, smart(pidfile))
        d2 = s2.daemons["kv"]
        assert fake.calls == [("spawn", PROG, 5001)]  # not launched again
        assert d2.state == State.RUNNING and d2.pid == 5002 and d2.adopted
        status = s2.answers.status()  # what status reports comes from the seam too
        assert status["supervisor"]["pid"] == SUPERVISOR
        assert [(e["pid"], e["state"], e["rss_bytes"]) for e in status["daemons"]] == [(5002, "running", 0)]
        s2.stop(d2)  # an adopted daemon leading its group: the stop signal to the group
        assert fake.calls[-1] == ("signal", "kvd-child", 5002, "SIGTERM")
    finally:
        end_supervisor(s2)


def test_smart__a_pid_in_the_state_file_with_another_start_time_is_not_adopted_by_the_next_supervisor(
    sup: tuple[Supervisor, FakeOS, FakeClock], tmp_path: Path
) -> None:
    s, fake, clock = sup
    pidfile = tmp_path / "pids" / "kv.pid"
    declare(s, smart(pidfile))
    adopt_launch(s, fake, clock, pidfile, 5001, argv=("kvd-child",), env=frozenset())
    fake.exit(5001)
    turn(s)
    s.answers.remove_owner(OWNER, why="exited")
    turn(s)
    s.shutdown_cleanup()
    end_supervisor(s)

    # With no supervisor, the daemon dies; its pid is reused by a process started before the
    # pidfile was written (so only the start time the state file recorded tells them apart).
    fake.exit(5002)
    fake.waiting.clear()  # (its reaper is gone)
    fake.stranger(5002, ("kvd-child",), started=-60)
    s2 = new_supervisor(tmp_path / "run", clock, fake)
    try:
        s2.state.restore()
        declare(s2, smart(pidfile))
        d2 = s2.daemons["kv"]
        assert fake.calls[-1] == ("spawn", PROG, 5003)  # started, not adopted
        assert d2.pid is None and d2.launcher_pid == 5003
        s2.stop(d2)  # the stop reaches only what its own launch started
        assert fake.calls[-1] == ("pidfd_signal", PROG, 5003, "SIGTERM")
        assert fake.signals_to(5002) == []
    finally:
        end_supervisor(s2)


def test_smart2__the_supervisor_writes_the_pidfile_and_removes_it_when_that_pid_dies(
    sup: tuple[Supervisor, FakeOS, FakeClock], tmp_path: Path
) -> None:
    s, fake, clock = sup
    pidfile = tmp_path / "pids" / "kv.pid"
    declare(s, smart(pidfile, daemonize=True, command=[PROG, "--foreground"]))
    d = s.daemons["kv"]
    assert fake.calls == [("spawn", PROG, 5001)]
    assert d.state == State.RUNNING and d.pid == 5001 and pidfile.read_text() == "5001\n"

    clock.now += 5.0  # a run longer than min_uptime: restarted at once
    fake.exit(5001, code=3)
    turn(s)
    assert fake.calls == [("spawn", PROG, 5001), ("spawn", PROG, 5002)]
    assert d.pid == 5002 and pidfile.read_text() == "5002\n"

    s.stop(d)  # the stop signal to its group; the pidfile removed once it is gone
    assert fake.calls[-1] == ("signal", PROG, 5002, "SIGTERM")
    fake.exit(5002, sig=signal.SIGTERM)
    turn(s)
    assert d.state == State.STOPPED and not pidfile.exists()
