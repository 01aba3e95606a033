"""Leader election for ``leader`` daemons (docs/events.md): lock backends and the lock-holder process.

Backends (:func:`open_lock`): ``file`` (flock, one host), PostgreSQL (session advisory lock with
``idle_session_timeout``), Redis (``SET NX PX`` with Lua-checked renew/release and a fencing
epoch). They are used only inside the holder process, ``python -m attachdaemon_core.leader
hold --name N --lease L --renew R --stop-timeout S [--margin M] --info JSON`` with the backend in
``$ATTACHDAEMON_INTERNAL_LEADER_BACKEND`` (never on the command line: it may hold a password).

Modules: ``rules`` (the lease arithmetic and what a backend string means; pure, shared with the
declarations), ``roles`` and ``role_types`` (the holder's decisions: a pure role machine),
``holder`` (the holder process: carries the machine's actions out), ``wire`` (its pipes to the
parent), ``worker`` (the thread making the engine's blocking calls), ``watchdog`` (its second
line of defence), ``channel`` (the socket between holder and watchdog), ``backends``,
``pg_backend`` and ``redis_backend`` (the engines).

Wire protocol: JSON objects, one per line; parent -> holder on the holder's fd 0, holder ->
parent on its fd 1.

holder -> parent::

    {"event":"acquired","token":N|null,"since":UNIX_TIME,"clean_handover":B,"lock_delay":SECS,
     "d_stop":MONO,"d_kill":MONO}
        we hold the lock and any lock delay is over: start the daemon now. d_stop and d_kill are
        CLOCK_MONOTONIC times (comparable across processes of one host): start nothing after
        d_stop, and have the session empty by d_kill, unless a later "renewed" moves them.
    {"event":"renewed","d_stop":MONO,"d_kill":MONO}
        after each acknowledged renewal while leading.
    {"event":"lost","reason":"..."}
        stop the daemon; the holder is already stopping it (stop_signal to its group now,
        SIGKILL to its session by t_s + lease - margin) and will release, then follow again.
    {"event":"info","role":"leader"|"follower"|"unknown","holder":{host,pid,since,token,...}|null,
     "token":N|null[, "lock_delay":SECS][, "reason":"..."]}
        on change and every 5 s while following ("unknown": engine unreachable, lock delay,
        or stopping before "acquired" was sent).
    {"event":"released","token":N|null}    after a "release" command completed.
    {"event":"error","reason":"engine unreachable: ..."}   DSN-free; the holder keeps retrying.

parent -> holder::

    {"cmd":"session","sid":S,"starttime":T,"stop_signal":15}
        right after spawning the daemon (setsid: pgid = sid = pid; T = /proc start time in
        clock ticks). From now on the holder (and its watchdog) own the deadline for S.
        A session sent while the holder is not the leader is SIGKILLed at once ("lost").
    {"cmd":"stopped"[, "sid":S]}   the daemon was reaped (the holder forgets the session).
    {"cmd":"release"[, "follow":false][, "hold_off":SECS]}
        graceful handover: the parent stops the daemon, sends "stopped", then "release". The
        holder stops any session still recorded (stop_signal, SIGKILL after stop_timeout),
        releases (token-checked; marks the release clean), sends "released" and exits 0; with
        "follow": true it stays and follows again after hold_off (default: one lease).
    {"cmd":"status"}   ask for an "info" event now.
    EOF (the parent died) or SIGTERM/SIGINT: SIGKILL the recorded session's members until none
        is left, release best-effort, exit 0.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attachdaemon_core.leader.backends import file_lock_path, open_lock
    from attachdaemon_core.leader.base import (
        BackendUnavailable,
        LeaderLock,
        Lease,
        LeaseLost,
        LeaseUnknown,
        lock_key63,
    )
    from attachdaemon_core.leader.rules import backend_kind, check_arithmetic

# Imported on first use, so that importing one submodule (the declarations import ``rules``)
# loads no more than it needs.
_WHERE = {
    "BackendUnavailable": "base",
    "LeaderLock": "base",
    "Lease": "base",
    "LeaseLost": "base",
    "LeaseUnknown": "base",
    "lock_key63": "base",
    "backend_kind": "rules",
    "check_arithmetic": "rules",
    "file_lock_path": "backends",
    "open_lock": "backends",
}

__all__ = [
    "BackendUnavailable",
    "LeaderLock",
    "Lease",
    "LeaseLost",
    "LeaseUnknown",
    "backend_kind",
    "check_arithmetic",
    "file_lock_path",
    "lock_key63",
    "open_lock",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
