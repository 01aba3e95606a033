"""The lock holder's role machine: every decision of the holder, pure, with the time passed in.

``step(state, now, event) -> (state, actions)``: no I/O, no clock, no randomness (an event
carries the random draw its decision may need, as ``jitter`` in [0, 1]). The holder process
(:mod:`attachdaemon_core.leader.holder`) turns what happens into events — a lock call's result,
a parent command, a tick of its loop — and carries out the actions: lock calls on its worker
thread, JSON events to its parent, signals to the daemon's session, messages to its watchdog.

Roles::

    FOLLOWER --acquired--> DELAY --lock delay over--> LEADER
       ^                     |                          |  lease lost, renewals late (d_stop),
       |                     +------------+-------------+  release asked, parent gone
       |                                  v
       +---- released (follow) ------- STOPPING --released (exit)--> EXITING

DELAY holds the lock but has not announced it ("acquired" is sent on entering LEADER): after a
possible loss of lock state on the server it waits out a lock delay (one lease plus the margin,
so that an old holder's daemon is gone), after an unclean handover the backend's short
``handover_grace``. STOPPING stops the daemon's session (its stop signal, then SIGKILL at
``kill_at``, never later than d_kill), then releases the lock.

The deadlines d_stop and d_kill are :func:`attachdaemon_core.leader.rules.deadlines`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from attachdaemon_core.leader.base import BackendUnavailable, Lease, LeaseLost
from attachdaemon_core.leader.role_types import (
    POLL,
    Abort,
    AcquireDone,
    Action,
    AfterStop,
    Announce,
    CheckSession,
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
from attachdaemon_core.leader.rules import deadlines

# --- the machine ----------------------------------------------------------------------------------

HOLDING = (Role.DELAY, Role.LEADER)


def step(state: State, now: float, event: Event) -> tuple[State, list[Action]]:
    """The state after ``event`` at monotonic time ``now``, and what to do. ``state`` is left
    unchanged."""
    s = dataclasses.replace(state)
    out: list[Action] = []
    _HANDLERS[type(event)](s, now, event, out)
    return s, out


def next_wake(s: State, now: float) -> float:
    """Seconds until the next :class:`Tick` is due (at most 1 s when nothing is)."""
    due: list[float] = []
    if s.role in HOLDING:
        due.append(s.d_stop)
        if s.busy is None:
            due.append(s.next_renew)
    if s.role is Role.DELAY:
        due.append(s.delay_until)
    if s.role is Role.STOPPING or s.want_release:
        due.append(now + POLL)
    if s.role is Role.FOLLOWER and s.busy is None:
        due.append(s.next_try)
        if s.want_holder:
            due.append(now)
    return max(0.0, min(due) - now) if due else 1.0


def watching(s: State) -> bool:
    """Whether to watch the lock's connection for unprompted messages (see ServerSpoke)."""
    return s.role in HOLDING and s.busy is None


def watchdog_sync(s: State) -> list[Action]:
    """Everything a new watchdog must be told (after the previous one died)."""
    out: list[Action] = []
    if s.lease is not None and s.role in (*HOLDING, Role.STOPPING):
        out.append(Watchdog({"op": "hold"}, lock_fds=True))
    if s.session is not None:
        out.append(_wd_session(s.session))
        out.append(_wd_deadline(s))
    return out


# --- handlers, one per event ---


def _tick(s: State, now: float, ev: Event, out: list[Action]) -> None:
    if s.role in HOLDING and now >= s.d_stop:
        ago = now - (s.lease.sent_at if s.lease else now)
        reason = f"lease not renewed in time (last acknowledged renewal sent {ago:.1f}s ago)"
        _lose(s, now, reason, definite=False, out=out)
    if s.role is Role.DELAY and now >= s.delay_until:
        _become_leader(s, out)
    if s.role is Role.STOPPING and not s.releasing:
        if s.session is not None:
            kill = s.kill_at is not None and now >= s.kill_at
            out.append(CheckSession(s.session, kill=kill))
        else:  # the session is empty: release best-effort (aborting a hung call first)
            s.releasing = s.want_release = True
    _schedule(s, now, ev.jitter, out)


def _acquire_done(s: State, now: float, ev: AcquireDone, out: list[Action]) -> None:
    s.busy = None
    if ev.error is not None:
        _unreachable(s, now, ev.error, ev.jitter, out)
        return
    s.backoff = s.cfg.retry
    if s.role is not Role.FOLLOWER:  # exit or release asked meanwhile
        if ev.lease is not None:
            s.lease = ev.lease
            s.want_release = True
        return
    if ev.lease is None:
        s.want_holder = True
        s.next_try = now + s.cfg.retry * (0.5 + 0.5 * ev.jitter)
        return
    _acquired(s, now, ev.lease, out)


def _renew_done(s: State, now: float, ev: RenewDone, out: list[Action]) -> None:
    s.busy = None
    if s.role not in HOLDING:
        return
    if ev.error is None and ev.lease is not None:
        s.lease = ev.lease
        _set_deadlines(s, ev.lease)
        if s.session is not None:
            out.append(_wd_deadline(s))
        if s.role is Role.LEADER:  # the supervisor starts a daemon only before d_stop
            out.append(Emit("renewed", {"d_stop": s.d_stop, "d_kill": s.d_kill}))
    elif isinstance(ev.error, LeaseLost):
        _lose(s, now, f"lock lost: {ev.error}", definite=True, out=out)
    else:  # outcome unknown: try again soon, until d_stop
        s.next_renew = now + s.cfg.renew / 2


def _release_done(s: State, now: float, ev: ReleaseDone, out: list[Action]) -> None:
    s.busy = None
    s.released_token = s.lease.token if s.lease is not None else None
    s.lease = None
    _after_release(s, now, ev.jitter, out)


def _holder_done(s: State, now: float, ev: HolderDone, out: list[Action]) -> None:
    s.busy = None
    if ev.error is not None:
        _unreachable(s, now, ev.error, ev.jitter, out)
    elif s.role is Role.FOLLOWER:
        out.append(Info("follower", ev.holder))
    elif s.role is Role.LEADER:
        out.append(Info("leader", ev.holder, token=s.lease.token if s.lease else None, force=True))


def _session_started(s: State, now: float, ev: SessionStarted, out: list[Action]) -> None:
    if s.role is not Role.LEADER:
        # Spawned after we stopped leading (a race with "lost"): it must not run.
        out.append(KillSession(ev.session))
        out.append(Emit("lost", {"reason": "not the leader: the new session was killed"}))
        return
    s.session = ev.session
    out.append(_wd_session(ev.session))
    out.append(_wd_deadline(s))


def _session_stopped(s: State, now: float, ev: SessionStopped, out: list[Action]) -> None:
    if s.session is not None and ev.sid in (None, s.session.sid):
        s.session = None
        out.append(Watchdog({"op": "clear"}))


def _session_gone(s: State, now: float, ev: SessionGone, out: list[Action]) -> None:
    if s.role is not Role.STOPPING or s.releasing or s.session is None or s.session.sid != ev.sid:
        return  # an answer that came too late to matter
    s.session = None
    out.append(Watchdog({"op": "clear"}))
    s.releasing = s.want_release = True
    _schedule(s, now, ev.jitter, out)


def _release_requested(s: State, now: float, ev: ReleaseRequested, out: list[Action]) -> None:
    s.hold_off = max(0.0, s.cfg.lease if ev.hold_off is None else ev.hold_off)
    mode = AfterStop.RELEASE_FOLLOW if ev.follow else AfterStop.RELEASE_EXIT
    if s.role in HOLDING:
        s.after_stop = mode
        _begin_stop(s, now, kill_after=s.cfg.stop_timeout, reason=None, out=out)
    elif s.role is Role.STOPPING:
        s.after_stop = mode
    else:
        out.append(Emit("released", {"token": None}))
        if ev.follow:
            s.next_try = now + s.hold_off
        else:
            s.role, s.exit_code = Role.EXITING, 0


def _status_requested(s: State, now: float, ev: StatusRequested, out: list[Action]) -> None:
    s.want_holder = True


def _parent_gone(s: State, now: float, ev: ParentGone, out: list[Action]) -> None:
    if s.role is Role.EXITING:
        return
    if s.session is not None:  # nobody will reap or stop the daemon: kill it now
        out.append(KillSession(s.session))
    if s.role in (*HOLDING, Role.STOPPING):
        _begin_stop(s, now, kill_after=0.0, reason=None, out=out)
        s.after_stop = AfterStop.EXIT
    else:
        s.role, s.exit_code = Role.EXITING, 0


def _server_spoke(s: State, now: float, ev: ServerSpoke, out: list[Action]) -> None:
    s.next_renew = now


_HANDLERS: dict[type[Event], Callable[[State, float, Any, list[Action]], None]] = {
    Tick: _tick,
    AcquireDone: _acquire_done,
    RenewDone: _renew_done,
    ReleaseDone: _release_done,
    HolderDone: _holder_done,
    SessionStarted: _session_started,
    SessionStopped: _session_stopped,
    SessionGone: _session_gone,
    ReleaseRequested: _release_requested,
    StatusRequested: _status_requested,
    ParentGone: _parent_gone,
    ServerSpoke: _server_spoke,
}


# --- transitions ---


def _schedule(s: State, now: float, jitter: float, out: list[Action]) -> None:
    """Start the next lock call, if one is due and none is in flight."""
    if s.busy is not None:
        if s.want_release and s.busy is not Op.RELEASE and not s.aborted:
            s.aborted = True
            out.append(Abort())
        return
    s.aborted = False
    if s.want_release:
        s.want_release = False
        if s.lease is not None:
            _submit(s, Op.RELEASE, s.lease, out)
        else:
            s.released_token = None
            _after_release(s, now, jitter, out)
    elif s.role in HOLDING and s.lease is not None and now >= s.next_renew:
        _submit(s, Op.RENEW, s.lease, out)
    elif s.role is Role.FOLLOWER and now >= s.next_try:
        _submit(s, Op.ACQUIRE, None, out)
    elif s.want_holder and s.role in (Role.FOLLOWER, Role.LEADER):
        s.want_holder = False
        _submit(s, Op.HOLDER, None, out)


def _submit(s: State, op: Op, lease: Lease | None, out: list[Action]) -> None:
    s.busy = op
    out.append(Submit(op, lease))


def _unreachable(s: State, now: float, err: BaseException, jitter: float, out: list[Action]) -> None:
    reason = str(err) if isinstance(err, BackendUnavailable) else type(err).__name__
    out.append(Error(f"engine unreachable: {reason}"))
    out.append(Info("unknown", None))
    s.backoff = min(s.backoff * 2, max(5.0, s.cfg.renew))
    s.next_try = now + s.backoff * (0.5 + 0.5 * jitter)


def _acquired(s: State, now: float, lease: Lease, out: list[Action]) -> None:
    s.lease = lease
    _set_deadlines(s, lease)
    s.role = Role.DELAY
    s.after_stop = AfterStop.FOLLOW
    out.append(Watchdog({"op": "hold"}, lock_fds=True))
    delay = 0.0
    if not lease.clean_handover and s.cfg.state_may_be_lost:
        delay = s.cfg.lease + s.cfg.margin  # the old holder's daemon is gone by then
    elif not lease.previous_released:
        delay = s.cfg.handover_grace
    s.delay = delay
    s.delay_until = now + delay
    if delay > 0:
        out.append(Info("unknown", None, force=True, extra={"lock_delay": round(delay, 3)}))
    else:
        _become_leader(s, out)


def _become_leader(s: State, out: list[Action]) -> None:
    assert s.lease is not None
    s.role = Role.LEADER
    s.announced = True
    out.append(Announce(s.lease.token, s.lease.clean_handover, round(s.delay, 3), s.d_stop, s.d_kill))


def _lose(s: State, now: float, reason: str, *, definite: bool, out: list[Action]) -> None:
    # After a definite loss the lock may already be another holder's: no grace beyond its own.
    grace = min(s.cfg.handover_grace / 2, s.cfg.stop_timeout) if definite else s.cfg.stop_timeout
    _begin_stop(s, now, kill_after=grace, reason=reason, out=out)


def _begin_stop(s: State, now: float, *, kill_after: float, reason: str | None, out: list[Action]) -> None:
    """Stop the daemon's session: its stop signal now (unless ``kill_after`` is 0), SIGKILL
    after ``kill_after`` and never after d_kill; then release."""
    announced, s.announced = s.announced, False
    kill_at = min(now + kill_after, max(s.d_kill, now)) if s.lease is not None else now
    if s.role is Role.STOPPING and s.kill_at is not None:
        kill_at = min(kill_at, s.kill_at)
    else:
        s.releasing = False
    s.role = Role.STOPPING
    s.kill_at = kill_at
    if s.session is not None:
        if kill_after > 0 and not s.session.stop_sent:
            out.append(SignalSession(s.session))
            s.session = dataclasses.replace(s.session, stop_sent=True)
        out.append(_wd_deadline(s))
    if reason is not None:
        if announced:
            out.append(Emit("lost", {"reason": reason}))
        else:
            out.append(Info("unknown", None, force=True, extra={"reason": reason}))


def _after_release(s: State, now: float, jitter: float, out: list[Action]) -> None:
    out.append(Watchdog({"op": "drop"}))
    out.append(Watchdog({"op": "clear"}))
    mode, s.after_stop = s.after_stop, AfterStop.FOLLOW
    s.releasing = False
    if mode in (AfterStop.RELEASE_EXIT, AfterStop.RELEASE_FOLLOW):
        out.append(Emit("released", {"token": s.released_token}))
    if mode in (AfterStop.EXIT, AfterStop.RELEASE_EXIT):
        s.role, s.exit_code = Role.EXITING, 0
        return
    s.role = Role.FOLLOWER
    s.kill_at = None
    # After a loss, let the followers go first (no flapping back to a flaky host).
    wait = s.hold_off if mode is AfterStop.RELEASE_FOLLOW else s.cfg.retry * (1.0 + jitter)
    s.next_try = now + wait
    s.want_holder = True


def _set_deadlines(s: State, lease: Lease) -> None:
    s.d_stop, s.d_kill = deadlines(lease.sent_at, s.cfg.lease, s.cfg.stop_timeout, s.cfg.margin)
    s.next_renew = lease.sent_at + s.cfg.renew


def _wd_session(session: Session) -> Watchdog:
    return Watchdog(
        {
            "op": "session",
            "sid": session.sid,
            "starttime": session.starttime,
            "stop_signal": session.stop_signal,
        }
    )


def _wd_deadline(s: State) -> Watchdog:
    if s.role is Role.STOPPING:  # the holder already sent the stop signal itself
        kill_at = s.kill_at if s.kill_at is not None else s.d_kill
        return Watchdog({"op": "deadline", "stop_at": None, "kill_at": kill_at})
    return Watchdog({"op": "deadline", "stop_at": s.d_stop, "kill_at": s.d_kill})
