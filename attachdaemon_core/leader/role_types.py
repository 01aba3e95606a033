"""The role machine's vocabulary: the roles, the holder's state, the events the machine takes
and the actions it gives (see :mod:`attachdaemon_core.leader.roles`). Data only."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.leader.base import Lease
from attachdaemon_core.leader.rules import MARGIN

POLL = 0.02  # seconds between checks of the daemon's session while stopping


class Role(enum.Enum):
    FOLLOWER = "follower"  # trying to acquire, every retry period
    DELAY = "delay"  # holds the lock, waiting out a lock delay before announcing it
    LEADER = "leader"  # holds the lock and announced it: the daemon may run until d_stop
    STOPPING = "stopping"  # emptying the daemon's session, then releasing
    EXITING = "exiting"


class AfterStop(enum.Enum):
    """What STOPPING leads to once the lock is released."""

    FOLLOW = "follow"  # follow again (after a loss: let the others go first)
    RELEASE_EXIT = "release-exit"  # a "release" command: say "released", exit 0
    RELEASE_FOLLOW = "release-follow"  # a "release" command with follow: say so, follow after hold_off
    EXIT = "exit"  # the parent is gone: exit 0


class Op(enum.Enum):
    """The lock's blocking calls (:class:`~attachdaemon_core.leader.base.LeaderLock` methods),
    made one at a time on the holder's worker thread."""

    ACQUIRE = "try_acquire"
    RENEW = "renew"
    RELEASE = "release"
    HOLDER = "holder"


@dataclass(frozen=True)
class Config:
    lease: float = 15.0
    renew: float = 3.0
    stop_timeout: float = 4.0
    margin: float = MARGIN
    #: The lock's traits (see LeaderLock).
    state_may_be_lost: bool = False
    handover_grace: float = 0.0

    @property
    def retry(self) -> float:
        """Base period of acquisition attempts while following (jittered 0.5x-1x)."""
        return min(self.renew, 1.0)


@dataclass(frozen=True)
class Session:
    """The daemon's session (setsid: sid = pgid = its pid; starttime in clock ticks)."""

    sid: int
    starttime: int
    stop_signal: int
    stop_sent: bool = False


@dataclass
class State:
    cfg: Config
    role: Role = Role.FOLLOWER
    lease: Lease | None = None
    session: Session | None = None
    busy: Op | None = None  # the lock call in flight
    d_stop: float = 0.0
    d_kill: float = 0.0
    kill_at: float | None = None  # while STOPPING: SIGKILL the session from then on
    next_try: float = 0.0
    next_renew: float = 0.0
    delay_until: float = 0.0
    delay: float = 0.0
    after_stop: AfterStop = AfterStop.FOLLOW
    hold_off: float = 0.0
    announced: bool = False  # "acquired" was sent and no "lost" since
    want_release: bool = False
    releasing: bool = False
    aborted: bool = False  # the call in flight was aborted to make way for the release
    want_holder: bool = False  # an "info" about the holder is due
    backoff: float = -1.0  # the retry period while the engine is unreachable (-1: cfg.retry)
    released_token: int | None = None
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.backoff < 0:
            self.backoff = self.cfg.retry


# --- events: what happened ------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    jitter: float = field(default=0.5, kw_only=True)  # a uniform draw in [0, 1]


@dataclass(frozen=True)
class Tick(Event):
    """The loop woke up (a deadline, or after handling what woke it)."""


@dataclass(frozen=True)
class AcquireDone(Event):
    lease: Lease | None
    error: BaseException | None = None


@dataclass(frozen=True)
class RenewDone(Event):
    lease: Lease | None
    error: BaseException | None = None


@dataclass(frozen=True)
class ReleaseDone(Event):
    error: BaseException | None = None


@dataclass(frozen=True)
class HolderDone(Event):
    holder: dict[str, Any] | None
    error: BaseException | None = None


@dataclass(frozen=True)
class SessionStarted(Event):
    """The parent spawned the daemon in this session."""

    session: Session


@dataclass(frozen=True)
class SessionStopped(Event):
    """The parent reaped the daemon (sid None: whatever session is recorded)."""

    sid: int | None = None


@dataclass(frozen=True)
class SessionGone(Event):
    """Answer to :class:`CheckSession`: no process of the session is left."""

    sid: int


@dataclass(frozen=True)
class ReleaseRequested(Event):
    follow: bool = False
    hold_off: float | None = None  # None: one lease


@dataclass(frozen=True)
class StatusRequested(Event):
    pass


@dataclass(frozen=True)
class ParentGone(Event):
    """EOF from the parent, or SIGTERM/SIGINT: nobody will stop the daemon but us."""


@dataclass(frozen=True)
class ServerSpoke(Event):
    """The lock's connection turned readable unprompted (a FATAL?): renew now to find out."""


# --- actions: what to do --------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """Make this lock call on the worker thread (its result comes back as an event)."""

    op: Op
    lease: Lease | None = None


@dataclass(frozen=True)
class Abort:
    """Break the lock call in flight (it blocks the release)."""


@dataclass(frozen=True)
class Emit:
    """Send this event to the parent."""

    event: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Announce:
    """Send "acquired" to the parent (with the wall-clock time as ``since``)."""

    token: int | None
    clean_handover: bool
    lock_delay: float
    d_stop: float
    d_kill: float


@dataclass(frozen=True)
class Info:
    """Send an "info" event (repeats of the same one are rate-limited unless forced)."""

    role: str  # leader | follower | unknown
    holder: dict[str, Any] | None
    token: int | None = None
    force: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    """Send an "error" event (repeats rate-limited)."""

    reason: str


@dataclass(frozen=True)
class SignalSession:
    """Send the session's stop signal to its process group."""

    session: Session


@dataclass(frozen=True)
class KillSession:
    """SIGKILL every process of the session now."""

    session: Session


@dataclass(frozen=True)
class CheckSession:
    """Is any process of the session left (SIGKILL them first when ``kill``)? If none, answer
    with :class:`SessionGone`."""

    session: Session
    kill: bool


@dataclass(frozen=True)
class Watchdog:
    """Send this message to the watchdog (with the lock's fds when ``lock_fds``)."""

    msg: dict[str, Any]
    lock_fds: bool = False


Action = (
    Submit | Abort | Emit | Announce | Info | Error | SignalSession | KillSession | CheckSession | Watchdog
)
