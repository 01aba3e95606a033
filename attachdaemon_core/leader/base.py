"""The lock-backend interface: what a lock engine must offer the lock holder (the lease arithmetic
is in :mod:`attachdaemon_core.leader.rules`; docs/declarations.md, "leader").

Everything here is synchronous and used only inside the lock-holder process
(:mod:`attachdaemon_core.leader.holder`); the holder owns all timing, never a client library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from attachdaemon_core.spec.redaction import redact

#: Holder info keys shown by ``holder()`` (for status and logs).
INFO_KEYS = ("host", "pid", "since", "token")


@dataclass(frozen=True)
class Lease:
    """What a successful acquisition or renewal proves.

    ``sent_at`` is the monotonic time the acquiring or renewing request was SENT: the server
    cannot expire the lease before ``sent_at + lease`` (research §3.1 rule 1).
    ``clean_handover`` is False only after a POSSIBLE loss of lock state on the server (Redis
    epoch regression, PostgreSQL restarted since the previous holder acquired): the new holder
    then waits out a lock delay before starting the daemon. ``previous_released`` says whether
    the previous holder released cleanly (or there was none); when it did not, the holder waits
    the backend's short ``handover_grace`` (see :class:`LeaderLock`).
    """

    token: int | None
    sent_at: float
    clean_handover: bool = True
    previous_released: bool = True


class LeaseLost(Exception):
    """The lock is definitely not ours any more (token mismatch, session gone)."""


class LeaseUnknown(Exception):
    """The renewal's outcome is unknown (timeout, connection error): retry until D_stop."""


class BackendUnavailable(Exception):
    """The engine cannot be reached or used; the message never contains a DSN."""


class LeaderLock(Protocol):
    """One named lock in one engine. Not thread-safe except :meth:`abort`."""

    #: A server-side loss of lock state is possible (restart, failover): a lock delay applies
    #: after an acquisition whose ``clean_handover`` is False.
    state_may_be_lost: bool
    #: Tokens are monotonic per lock name (usable as fencing tokens).
    fencing: bool
    #: The lock goes away when the holder's connection closes (PostgreSQL, file).
    connection_bound_release: bool
    #: Seconds a responsive previous holder needs to notice that its lock was taken from it
    #: by force (e.g. ``pg_terminate_backend``); waited only when it did not release cleanly.
    handover_grace: float

    def try_acquire(self) -> Lease | None: ...

    def renew(self, lease: Lease) -> Lease: ...

    def release(self, lease: Lease) -> None: ...

    def holder(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...

    def lock_fds(self) -> list[int]:
        """File descriptors whose closing ends the lock (given to the watchdog to keep open)."""
        ...

    def watch_fd(self) -> int | None:
        """An fd that turns readable when the engine says something unprompted (a FATAL)."""
        ...

    def abort(self) -> None:
        """Break a call blocked in another thread (thread-safe; the connection is lost)."""
        ...


def lock_key63(name: str) -> int:
    """63 bits of sha256(name): a non-negative PostgreSQL bigint advisory-lock key."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def one_line(exc: BaseException, secret: str | None = None) -> str:
    """A short, DSN-free, single-line description of ``exc``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text, secret)[:300]
