"""The lock holder's role machine (attachdaemon_core.leader.roles), pure, on a fake clock.

Each test drives ``step(state, now, event)`` with the times it chooses and checks the state and
the actions; nothing is started, no lock is taken. The holder process carries these actions
out against the real engines in test_holder.py, test_supervised.py and test_partition.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from attachdaemon_core.leader.base import BackendUnavailable, Lease, LeaseLost, LeaseUnknown
from attachdaemon_core.leader.role_types import (
    POLL,
    Abort,
    AcquireDone,
    Action,
    Announce,
    CheckSession,
    Config,
    Emit,
    Error,
    Event,
    HolderDone,
    Info,
    KillSession,
    Op,
    ParentGone,
    ReleaseDone,
    ReleaseRequested,
    RenewDone,
    Role,
    ServerSpoke,
    Session,
    SessionGone,
    SessionStarted,
    SessionStopped,
    SignalSession,
    State,
    StatusRequested,
    Submit,
    Tick,
    Watchdog,
)
from attachdaemon_core.leader.roles import next_wake, step, watchdog_sync, watching
from attachdaemon_core.leader.rules import check_arithmetic
from attachdaemon_core.leader.wire import parse_command

pytestmark = pytest.mark.unit

# The defaults: d_stop = t_s + 15 - 4 - 1 = t_s + 10, d_kill = t_s + 14.
CFG = Config(lease=15.0, renew=3.0, stop_timeout=4.0, margin=1.0)
SESSION = Session(sid=4242, starttime=777, stop_signal=15)
SIGNALLED = dataclasses.replace(SESSION, stop_sent=True)


class Clock:
    """The fake clock: the machine only ever sees the ``now`` it is given."""

    def __init__(self, cfg: Config = CFG, t: float = 100.0):
        self.state = State(cfg)
        self.t = t

    def at(self, t: float, event: Event) -> list[Action]:
        assert t >= self.t, "time runs forward"
        self.t = t
        before = self.state
        self.state, actions = step(before, t, event)
        assert before is not self.state
        return actions

    def tick(self, t: float) -> list[Action]:
        return self.at(t, Tick())


def of(actions: list[Action], kind: type[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def emitted(actions: list[Action]) -> list[tuple[str, dict[str, Any]]]:
    return [(a.event, a.fields) for a in of(actions, Emit)]


def leading(cfg: Config = CFG, *, token: int = 7, sent: float = 100.0, session: bool = True) -> Clock:
    """A holder that acquired at ``sent`` (token ``token``) and, by default, runs the daemon."""
    c = Clock(cfg, t=sent)
    assert of(c.tick(sent), Submit) == [Submit(Op.ACQUIRE)]
    c.at(sent + 0.01, AcquireDone(Lease(token=token, sent_at=sent)))
    assert c.state.role is Role.LEADER
    if session:
        c.at(sent + 0.02, SessionStarted(SESSION))
    return c


# --- acquire --------------------------------------------------------------------------------------


def test_acquire__a_follower_tries_at_once_and_announces_the_lease_with_its_deadlines() -> None:
    c = Clock()
    assert c.tick(100.0) == [Submit(Op.ACQUIRE)]
    assert c.state.busy is Op.ACQUIRE
    assert c.tick(100.005) == []  # one call at a time
    first = c.state
    actions = c.at(100.01, AcquireDone(Lease(token=7, sent_at=100.0)))
    assert first.role is Role.FOLLOWER, "step leaves the state it was given unchanged"
    assert c.state.role is Role.LEADER and c.state.busy is None
    assert Watchdog({"op": "hold"}, lock_fds=True) in actions  # the lock's fd outlives a crash
    assert of(actions, Announce) == [Announce(7, True, 0.0, d_stop=110.0, d_kill=114.0)]


def test_acquire__held_elsewhere_retries_jittered_and_reports_the_holder() -> None:
    c = Clock()
    c.tick(100.0)
    c.at(100.01, AcquireDone(None, jitter=0.0))
    assert c.state.role is Role.FOLLOWER
    assert c.state.next_try == pytest.approx(100.01 + 0.5)  # retry (1 s) x 0.5 with jitter 0
    assert c.tick(100.02) == [Submit(Op.HOLDER)]  # who holds it, while waiting
    holder = {"host": "b", "pid": 1, "since": 1.0, "token": 3}
    assert c.at(100.03, HolderDone(holder)) == [Info("follower", holder, token=None)]
    assert c.tick(100.4) == []
    assert c.tick(100.51) == [Submit(Op.ACQUIRE)]
    c.at(100.52, AcquireDone(None, jitter=1.0))
    assert c.state.next_try == pytest.approx(100.52 + 1.0)


def test_acquire__after_a_possible_loss_of_lock_state_waits_a_lock_delay() -> None:
    cfg = Config(state_may_be_lost=True)
    c = Clock(cfg)
    c.tick(100.0)
    actions = c.at(100.01, AcquireDone(Lease(token=1, sent_at=100.0, clean_handover=False)))
    assert c.state.role is Role.DELAY and not of(actions, Announce)
    assert of(actions, Info) == [Info("unknown", None, force=True, extra={"lock_delay": 16.0})]
    assert watching(c.state)
    # The lease is renewed meanwhile; the daemon may start only once the delay is over.
    for t in (103.0, 106.0, 109.0, 112.0, 115.0):
        assert c.tick(t) == [Submit(Op.RENEW, c.state.lease)]
        assert c.at(t + 0.01, RenewDone(Lease(1, t, False))) == []  # no "renewed" before "acquired"
    assert not of(c.tick(116.0), Announce)
    announce = of(c.tick(116.02), Announce)
    assert announce == [Announce(1, False, 16.0, d_stop=125.0, d_kill=129.0)]


def test_acquire__after_an_unclean_handover_waits_the_backends_grace() -> None:
    c = Clock(Config(handover_grace=0.6))
    c.tick(100.0)
    c.at(100.01, AcquireDone(Lease(token=2, sent_at=100.0, previous_released=False)))
    assert c.state.role is Role.DELAY and c.state.delay_until == pytest.approx(100.61)
    assert of(c.tick(100.62), Announce)[0].lock_delay == 0.6


def test_acquire__an_unreachable_engine_backs_off_doubling_up_to_5s() -> None:
    c = Clock()
    seen = []
    t = 100.0
    for _ in range(5):
        assert c.tick(t) == [Submit(Op.ACQUIRE)]
        actions = c.at(t, AcquireDone(None, BackendUnavailable("connection refused"), jitter=1.0))
        assert of(actions, Error) == [Error("engine unreachable: connection refused")]
        assert of(actions, Info) == [Info("unknown", None)]
        seen.append(round(c.state.next_try - t, 3))
        t = c.state.next_try
    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0]
    c.tick(t)
    c.at(t, AcquireDone(None, jitter=1.0))  # reachable again: back to the retry period
    assert c.state.backoff == CFG.retry


# --- renew ----------------------------------------------------------------------------------------


def test_renew__every_period_and_each_acknowledged_renewal_moves_the_deadlines() -> None:
    c = leading()
    assert c.tick(102.9) == []
    assert next_wake(c.state, 102.9) == pytest.approx(0.1)
    assert c.tick(103.0) == [Submit(Op.RENEW, Lease(7, 100.0))]
    assert not watching(c.state)  # the connection is the worker's while it renews
    actions = c.at(103.05, RenewDone(Lease(7, 103.0)))
    assert emitted(actions) == [("renewed", {"d_stop": 113.0, "d_kill": 117.0})]
    assert Watchdog({"op": "deadline", "stop_at": 113.0, "kill_at": 117.0}) in actions
    assert c.state.next_renew == 106.0


def test_renew__the_server_speaking_unprompted_renews_at_once() -> None:
    c = leading()
    c.at(101.0, ServerSpoke())
    assert c.tick(101.0) == [Submit(Op.RENEW, Lease(7, 100.0))]


def test_renew_failure__retried_every_half_period_and_the_deadlines_stay() -> None:
    c = leading()
    c.tick(103.0)
    assert c.at(103.5, RenewDone(None, LeaseUnknown("timeout"))) == []
    assert (c.state.role, c.state.d_stop, c.state.next_renew) == (Role.LEADER, 110.0, 105.0)
    assert c.tick(104.9) == []
    assert c.tick(105.0) == [Submit(Op.RENEW, Lease(7, 100.0))]
    c.at(105.1, RenewDone(None, TimeoutError()))
    assert c.state.role is Role.LEADER


# --- lease expiry ---------------------------------------------------------------------------------


def test_lease_expiry__renewals_late_stop_the_daemon_at_d_stop_and_kill_it_by_d_kill() -> None:
    c = leading()
    c.tick(103.0)  # a renewal that never comes back
    assert c.tick(109.99) == []
    actions = c.tick(110.0)  # d_stop = t_s + lease - stop_timeout - margin
    assert c.state.role is Role.STOPPING
    reason = "lease not renewed in time (last acknowledged renewal sent 10.0s ago)"
    assert emitted(actions) == [("lost", {"reason": reason})]
    assert of(actions, SignalSession) == [SignalSession(SESSION)]
    assert Watchdog({"op": "deadline", "stop_at": None, "kill_at": 114.0}) in actions
    assert c.state.kill_at == 114.0  # d_kill: a full stop_timeout, and the margin to the lease's end
    assert of(c.tick(112.0), CheckSession) == [CheckSession(SIGNALLED, kill=False)]
    assert of(c.tick(114.0), CheckSession)[0].kill
    # The daemon is gone; the hung renewal is aborted so that the release can go.
    actions = c.at(114.05, SessionGone(SESSION.sid))
    assert Watchdog({"op": "clear"}) in actions and of(actions, Abort) == [Abort()]
    assert of(c.tick(114.06), Abort) == []  # once
    c.at(114.1, RenewDone(None, LeaseUnknown("aborted")))
    assert c.tick(114.11) == [Submit(Op.RELEASE, Lease(7, 100.0))]
    actions = c.at(114.2, ReleaseDone(jitter=0.0))
    assert Watchdog({"op": "drop"}) in actions and emitted(actions) == []
    assert c.state.role is Role.FOLLOWER and c.state.lease is None
    assert c.state.next_try == pytest.approx(114.2 + CFG.retry)  # the others go first


@pytest.mark.parametrize(("lease", "renew", "stop"), [(15, 3, 4), (4, 0.5, 0.5), (21, 3, 10)])
def test_lease_expiry__slack_the_shortest_safe_lease_fits_three_renewals_and_a_margin(
    lease: float, renew: float, stop: float
) -> None:
    """At the shortest lease the arithmetic accepts, three renewals still fit before d_stop,
    and the session is empty a margin before the server may expire the lease."""
    assert check_arithmetic(lease, renew, stop) is None
    assert check_arithmetic(lease - 0.01, renew, stop) is not None
    c = leading(Config(lease=lease, renew=renew, stop_timeout=stop), sent=0.0)
    attempts = []
    t = 0.02
    while c.state.role is Role.LEADER:
        t = round(t + 0.01, 2)
        if of(c.tick(t), Submit):
            attempts.append(t)
            c.at(t, RenewDone(None, LeaseUnknown("no answer")))
    # Retried every half period after the first failure, and still trying at the third period.
    assert attempts[0] == renew and max(attempts) >= 3 * renew
    assert t == pytest.approx(lease - stop - 1.0)  # d_stop
    assert c.state.kill_at == pytest.approx(lease - 1.0)  # d_kill = lease end - margin


# --- lost lock ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("grace", "signalled", "kill_after"), [(0.0, False, 0.0), (2.0, True, 1.0)])
def test_lost_lock__definite_loss_gives_the_daemon_only_half_the_grace(
    grace: float, signalled: bool, kill_after: float
) -> None:
    c = leading(Config(handover_grace=grace))
    c.tick(103.0)
    actions = c.at(103.1, RenewDone(None, LeaseLost("lock file token changed")))
    assert emitted(actions) == [("lost", {"reason": "lock lost: lock file token changed"})]
    assert bool(of(actions, SignalSession)) is signalled
    assert c.state.kill_at == pytest.approx(103.1 + kill_after)
    assert of(c.tick(103.1 + kill_after), CheckSession)[0].kill


def test_lost_lock__a_session_started_after_the_loss_is_killed_at_once() -> None:
    c = leading(session=False)
    c.tick(103.0)
    c.at(103.1, RenewDone(None, LeaseLost("gone")))
    late = Session(sid=99, starttime=1, stop_signal=15)
    actions = c.at(103.2, SessionStarted(late))
    assert of(actions, KillSession) == [KillSession(late)]
    assert emitted(actions) == [("lost", {"reason": "not the leader: the new session was killed"})]
    assert c.state.session is None


def test_lost_lock__before_the_announcement_is_reported_as_unknown_not_lost() -> None:
    c = Clock(Config(state_may_be_lost=True))
    c.tick(100.0)
    c.at(100.01, AcquireDone(Lease(token=1, sent_at=100.0, clean_handover=False)))
    c.tick(103.0)
    actions = c.at(103.1, RenewDone(None, LeaseLost("epoch changed")))
    assert emitted(actions) == []
    assert of(actions, Info) == [
        Info("unknown", None, force=True, extra={"reason": "lock lost: epoch changed"})
    ]


# --- fencing token --------------------------------------------------------------------------------


def test_fencing_token__announced_shown_while_leading_hidden_while_following_and_released() -> None:
    c = leading(token=41)
    c.at(100.5, StatusRequested())
    assert c.tick(100.5) == [Submit(Op.HOLDER)]
    holder = {"host": "a", "pid": 1, "since": 1.0, "token": 41}
    assert c.at(100.6, HolderDone(holder)) == [Info("leader", holder, token=41, force=True)]
    c.tick(103.0)
    c.at(103.1, RenewDone(Lease(41, 103.0)))
    c.at(103.2, ReleaseRequested(follow=True, hold_off=2.0))
    c.at(103.3, SessionStopped(SESSION.sid))
    assert c.tick(103.31) == [Submit(Op.RELEASE, Lease(41, 103.0))]
    assert emitted(c.at(103.4, ReleaseDone())) == [("released", {"token": 41})]
    assert c.state.role is Role.FOLLOWER and c.state.next_try == pytest.approx(105.4)
    assert c.tick(105.4) == [Submit(Op.ACQUIRE)]
    c.at(105.5, AcquireDone(None))
    assert c.tick(105.5) == [Submit(Op.HOLDER)]
    assert of(c.at(105.6, HolderDone(holder)), Info) == [Info("follower", holder, token=None)]


def test_fencing_token__the_next_acquisition_announces_the_greater_token() -> None:
    c = leading(token=5, session=False)
    c.at(101.0, ReleaseRequested(follow=True, hold_off=0.0))
    c.tick(101.0)
    c.at(101.1, ReleaseDone())
    c.tick(101.2)
    actions = c.at(101.3, AcquireDone(Lease(token=6, sent_at=101.2)))
    assert [a.token for a in of(actions, Announce)] == [6]


# --- stop -----------------------------------------------------------------------------------------


def test_stop__release_command_stops_the_daemon_releases_and_exits() -> None:
    c = leading()
    actions = c.at(101.0, ReleaseRequested())
    assert c.state.role is Role.STOPPING and of(actions, SignalSession) == [SignalSession(SESSION)]
    assert c.state.kill_at == 105.0  # stop_timeout after the request (before d_kill, 114)
    assert c.state.hold_off == CFG.lease
    assert of(c.tick(101.1), CheckSession) and next_wake(c.state, 101.1) == pytest.approx(POLL)
    assert c.at(101.2, SessionStopped(SESSION.sid)) == [Watchdog({"op": "clear"})]
    assert c.tick(101.21) == [Submit(Op.RELEASE, Lease(7, 100.0))]
    actions = c.at(101.3, ReleaseDone())
    assert emitted(actions) == [("released", {"token": 7})]
    assert (c.state.role, c.state.exit_code) == (Role.EXITING, 0)


def test_stop__release_while_following_exits_at_once() -> None:
    c = Clock()
    actions = c.at(100.0, ReleaseRequested())
    assert emitted(actions) == [("released", {"token": None})]
    assert c.state.exit_code == 0


def test_stop__parent_gone_kills_the_session_now_releases_and_exits_without_a_word() -> None:
    c = leading()
    actions = c.at(101.0, ParentGone())
    assert of(actions, KillSession) == [KillSession(SESSION)] and not of(actions, SignalSession)
    assert c.state.role is Role.STOPPING and c.state.kill_at == 101.0
    assert of(c.tick(101.0), CheckSession)[0].kill
    actions = c.at(101.05, SessionGone(SESSION.sid))
    assert of(actions, Submit) == [Submit(Op.RELEASE, Lease(7, 100.0))]
    assert emitted(c.at(101.1, ReleaseDone())) == []
    assert (c.state.role, c.state.exit_code) == (Role.EXITING, 0)
    assert c.at(101.2, ParentGone()) == []  # twice (EOF, then SIGTERM): nothing more


def test_stop__an_acquisition_that_lands_after_exit_was_asked_is_released() -> None:
    c = Clock()
    c.tick(100.0)  # try_acquire in flight
    c.at(100.01, ParentGone())
    assert (c.state.role, c.state.exit_code) == (Role.EXITING, 0)
    assert c.at(100.02, AcquireDone(Lease(token=3, sent_at=100.0))) == []
    assert c.state.role is Role.EXITING and c.state.want_release  # never announced


def test_stop__a_stale_session_gone_answer_is_ignored() -> None:
    c = leading()
    c.at(101.0, ReleaseRequested())
    assert c.at(101.1, SessionGone(sid=1)) == []
    assert c.state.session is not None


# --- the holder's queries, and the parent's commands --------------------------------------------


def test_next_wake_and_watchdog_sync() -> None:
    c = Clock()
    assert next_wake(c.state, 100.0) == 0.0  # a follower tries at once
    assert watchdog_sync(c.state) == []
    c = leading()
    assert next_wake(c.state, 101.0) == pytest.approx(2.0)  # the next renewal (d_stop is later)
    assert watchdog_sync(c.state) == [
        Watchdog({"op": "hold"}, lock_fds=True),
        Watchdog({"op": "session", "sid": 4242, "starttime": 777, "stop_signal": 15}),
        Watchdog({"op": "deadline", "stop_at": 110.0, "kill_at": 114.0}),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"cmd":"session","sid":5,"starttime":9}', SessionStarted(Session(5, 9, 15))),
        (b'{"cmd":"stopped"}', SessionStopped(None)),
        (b'{"cmd":"stopped","sid":5}', SessionStopped(5)),
        (b'{"cmd":"release","follow":true,"hold_off":2}', ReleaseRequested(follow=True, hold_off=2.0)),
        (b'{"cmd":"release"}', ReleaseRequested()),
        (b'{"cmd":"status"}', StatusRequested()),
        (b"not json", "malformed command; ignored"),
        (b"[1]", "malformed command; ignored"),
        (b'{"cmd":"session","sid":"x"}', "malformed session command; ignored"),
        (b'{"cmd":"stopped","sid":"5"}', "malformed stopped command; ignored"),
        (b'{"cmd":"release","hold_off":"soon"}', "malformed release command; ignored"),
        (b'{"cmd":"fly"}', "unknown command 'fly'; ignored"),
    ],
)
def test_parent_commands(line: bytes, expected: Event | str) -> None:
    assert parse_command(line) == expected
