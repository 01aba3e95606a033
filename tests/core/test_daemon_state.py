"""The pure decisions of one daemon's record, replayed with a fake clock (no processes)."""

from __future__ import annotations

import pytest

from attachdaemon_core.engine.daemon import Daemon, ExitStatus, backoff_delay
from attachdaemon_core.engine.states import State, TransitionError, check_transition
from attachdaemon_core.spec.model import DaemonSpec

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)

CRASH = ExitStatus(1, None, 0.0)
CLEAN = ExitStatus(0, None, 0.0)


def run_and_die(d: Daemon, now: float, ran: float, status: ExitStatus = CRASH) -> tuple[State, float]:
    d.mark_started(100, now, now)
    decision = d.decide_after_exit(status, now + ran, stopping=False)
    return decision.state, decision.delay


def test_backoff__first_restart_immediate_then_doubling_capped() -> None:
    spec = DaemonSpec(name="x", command=("x",), max_backoff=1.0)
    delays = [backoff_delay(n, spec, rand=lambda: 0.5) for n in range(1, 8)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff__jitter_is_within_ten_percent() -> None:
    spec = DaemonSpec(name="x", command=("x",))
    assert backoff_delay(3, spec, rand=lambda: 0.0) == pytest.approx(0.18)
    assert backoff_delay(3, spec, rand=lambda: 1.0) == pytest.approx(0.22)


def test_quick_deaths_back_off_and_a_stable_run_resets_the_count() -> None:
    d = Daemon(DaemonSpec(name="x", command=("x",), min_uptime=1.0), rand=lambda: 0.5)
    t = 0.0
    seen = []
    for _ in range(4):
        state, delay = run_and_die(d, t, 0.1)
        seen.append((state, round(delay, 3)))
        t += 10
    assert seen == [(State.STARTING, 0.0), (State.BACKOFF, 0.1), (State.BACKOFF, 0.2), (State.BACKOFF, 0.4)]
    assert run_and_die(d, t, 5.0) == (State.STARTING, 0.0)  # ran longer than min_uptime
    assert d.quick_deaths == 1


def test_max_retries__fatal_after_that_many_quick_restarts() -> None:
    d = Daemon(DaemonSpec(name="x", command=("x",), max_retries=2))
    assert run_and_die(d, 0, 0.1)[0] == State.STARTING
    assert run_and_die(d, 1, 0.1)[0] == State.BACKOFF
    state, _ = run_and_die(d, 2, 0.1)
    assert state == State.FATAL


@pytest.mark.parametrize(
    ("policy", "status", "expected"),
    [
        ("always", CLEAN, State.STARTING),
        ("always", CRASH, State.STARTING),
        ("on-failure", CLEAN, State.EXITED),
        ("on-failure", CRASH, State.STARTING),
        ("never", CRASH, State.EXITED),
    ],
)
def test_restart_policy(policy: str, status: ExitStatus, expected: State) -> None:
    d = Daemon(DaemonSpec(name="x", command=("x",), restart=policy))  # type: ignore[arg-type]
    assert run_and_die(d, 0, 5, status)[0] == expected


def test_control_daemon_exit_is_fatal_and_says_why() -> None:
    d = Daemon(DaemonSpec(name="ctl", command=("x",), control=True, restart="never"))
    d.mark_started(5, 0, 0)
    decision = d.decide_after_exit(ExitStatus(3, None, 0), 1, stopping=False)
    assert decision.state == State.FATAL and decision.reason == "control daemon exited with status 3"


def test_exit_while_stopping__stays_stopped() -> None:
    """(Held daemons are the supervisor's ``held`` set: a stop by command is a stop, seen here.)"""
    d = Daemon(DaemonSpec(name="x", command=("x",)))
    d.mark_started(5, 0, 0)
    assert d.decide_after_exit(CRASH, 1, stopping=True).state == State.STOPPED
    d.mark_started(6, 2, 2)
    assert d.decide_after_exit(CRASH, 3, stopping=False).state == State.STARTING


def test_restarts_count_every_spawn_after_the_first() -> None:
    d = Daemon(DaemonSpec(name="x", command=("x",)))
    for i in range(3):
        d.mark_started(10 + i, i, i)
    assert d.restarts == 2
    d.mark_started(99, 5, 5, adopted=True)
    assert d.restarts == 2


def test_exit_status_descriptions() -> None:
    assert ExitStatus(None, 9, 0).describe() == "was killed by SIGKILL"
    assert ExitStatus(3, None, 0).describe() == "exited with status 3"
    assert ExitStatus(None, None, 0).describe() == "exited (status unknown)"


def test_transitions_are_checked() -> None:
    check_transition(State.RUNNING, State.STOPPING)
    with pytest.raises(TransitionError, match="exited -> stopping is not a valid transition"):
        check_transition(State.EXITED, State.STOPPING)
