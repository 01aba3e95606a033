"""Daemon states and the transitions allowed between them (docs/status-json.md, "state"). Stdlib only."""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    STARTING = "starting"  # spawned (or waiting for its pidfile / dependencies)
    RUNNING = "running"
    BACKOFF = "backoff"  # died quickly; waiting before the next start
    STOPPING = "stopping"
    STOPPED = "stopped"  # not running, by command, autostart false, or the server stopping
    EXITED = "exited"  # ended and its restart policy says to leave it
    FATAL = "fatal"  # gave up: max_retries reached, owned by another uid, or a control daemon
    STANDBY = "standby"  # leader daemon on a host that does not hold the lock
    SCHEDULED = "scheduled"  # a job waiting for its next run


RUNNING_STATES = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
HEALTHY_STATES = frozenset({State.RUNNING, State.STANDBY, State.SCHEDULED})

_ALLOWED: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset(
        {State.STARTING, State.STANDBY, State.RUNNING, State.BACKOFF, State.FATAL, State.SCHEDULED}
    ),
    State.STARTING: frozenset(
        {
            State.RUNNING,
            State.BACKOFF,
            State.STOPPING,
            State.STOPPED,
            State.FATAL,
            State.EXITED,
            State.STANDBY,
            State.SCHEDULED,
        }
    ),
    State.RUNNING: frozenset(
        {
            State.STOPPING,
            State.BACKOFF,
            State.STARTING,
            State.EXITED,
            State.FATAL,
            State.STOPPED,
            State.SCHEDULED,
        }
    ),
    State.BACKOFF: frozenset(
        {State.STARTING, State.STOPPED, State.FATAL, State.RUNNING, State.STANDBY, State.SCHEDULED}
    ),
    State.STOPPING: frozenset({State.STOPPED, State.STARTING, State.EXITED, State.FATAL, State.SCHEDULED}),
    State.EXITED: frozenset({State.STARTING, State.STOPPED, State.RUNNING, State.SCHEDULED}),
    State.FATAL: frozenset({State.STARTING, State.STOPPED, State.RUNNING, State.SCHEDULED}),
    State.STANDBY: frozenset({State.STARTING, State.STOPPED, State.RUNNING, State.SCHEDULED}),
    State.SCHEDULED: frozenset({State.STARTING, State.STOPPED, State.STOPPING, State.STANDBY}),
}


class TransitionError(RuntimeError):
    pass


def check_transition(old: State, new: State) -> None:
    if old != new and new not in _ALLOWED[old]:
        raise TransitionError(f"{old.value} -> {new.value} is not a valid transition")
