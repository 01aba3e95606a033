"""What Linux's /proc says about a process: identity, session, resource use. Stdlib only."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read(path: str, limit: int = 65536) -> bytes:
    """One small /proc file, read with raw syscalls (this runs on the supervisor's hot path)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def boot_id() -> str:
    try:
        return _read("/proc/sys/kernel/random/boot_id").decode().strip()
    except OSError:
        return "unknown"


def pid_max() -> int:
    try:
        return int(_read("/proc/sys/kernel/pid_max"))
    except (OSError, ValueError):
        return 4194304


def read_clocks() -> tuple[float, float]:
    """(wall clock, CLOCK_BOOTTIME) read together: a process's start, counted in ticks since boot,
    becomes a wall-clock instant only through the boot clock read now, never through
    /proc/stat's ``btime``, which is truncated to whole seconds (up to 1 s early)."""
    return time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)


# The seam tests use to inject a boot instant (wall - boot) with any fractional part.
CLOCKS: list[Callable[[], tuple[float, float]]] = [read_clocks]


def wall_from_ticks(ticks: int, clocks: tuple[float, float]) -> float:
    """The wall-clock instant of ``ticks`` (clock ticks since boot, as in /proc/PID/stat)."""
    wall_now, boot_now = clocks
    return wall_now - (boot_now - ticks / CLK_TCK)


def boot_seconds() -> float:
    """Seconds since boot now, in the clock /proc start times are counted in."""
    return CLOCKS[0]()[1]


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/PID/stat we use."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int
    sid: int
    utime: int
    stime: int
    starttime: int  # clock ticks since boot: with the boot id, a process's unique identity
    rss_pages: int

    @property
    def started_at(self) -> float:
        """Wall-clock start time (seconds since the epoch), derived through the boot clock."""
        return wall_from_ticks(self.starttime, CLOCKS[0]())

    @property
    def age(self) -> float:
        """Seconds since the process started, in CLOCK_BOOTTIME (the clock of ``starttime``)."""
        return boot_seconds() - self.starttime / CLK_TCK

    @property
    def cpu_seconds(self) -> float:
        return (self.utime + self.stime) / CLK_TCK


def stat(pid: int) -> Stat | None:
    """Parse /proc/PID/stat, or None if there is no such process."""
    try:
        raw = _read(f"/proc/{pid}/stat", 4096).decode("utf-8", "replace")
    except OSError:
        return None
    lpar, rpar = raw.find("("), raw.rfind(")")
    if lpar < 0 or rpar < 0:
        return None
    rest = raw[rpar + 2 :].split()
    try:
        return Stat(
            pid=pid,
            comm=raw[lpar + 1 : rpar],
            state=rest[0],
            ppid=int(rest[1]),
            pgid=int(rest[2]),
            sid=int(rest[3]),
            utime=int(rest[11]),
            stime=int(rest[12]),
            starttime=int(rest[19]),
            rss_pages=int(rest[21]),
        )
    except (IndexError, ValueError):
        return None


def exe(pid: int) -> str | None:
    """The realpath of a process's executable (minus ' (deleted)'), or None if unreadable."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    path = path.removesuffix(" (deleted)")
    return os.path.realpath(path)


def cmdline(pid: int) -> list[str]:
    try:
        raw = _read(f"/proc/{pid}/cmdline", 1 << 20)
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def owner_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def session_members(sid: int) -> list[int]:
    """Every live pid whose session id is ``sid`` (zombies excluded)."""
    members = []
    try:
        entries = os.scandir("/proc")
    except OSError:
        return []
    with entries:
        for entry in entries:
            name = entry.name
            if not name.isdigit():
                continue
            try:
                raw = _read(f"/proc/{name}/stat", 1024)
            except OSError:
                continue
            # Fields after the ")" that ends the command name: state ppid pgrp session …
            rest = raw[raw.rfind(b")") + 2 :].split(b" ", 4)
            if len(rest) >= 4 and rest[3] == str(sid).encode() and rest[0] not in (b"Z", b"X"):
                members.append(int(name))
    return members


def live_sessions() -> set[int]:
    """The session id of every live process (zombies excluded): one pass over /proc, which
    answers :func:`session_members`' emptiness question for many sessions at once."""
    sids: set[int] = set()
    try:
        entries = os.scandir("/proc")
    except OSError:
        return sids
    with entries:
        for entry in entries:
            name = entry.name
            if not name.isdigit():
                continue
            try:
                raw = _read(f"/proc/{name}/stat", 1024)
            except OSError:
                continue
            rest = raw[raw.rfind(b")") + 2 :].split(b" ", 4)
            if len(rest) >= 4 and rest[0] not in (b"Z", b"X"):
                with contextlib.suppress(ValueError):
                    sids.add(int(rest[3]))
    return sids


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid`` (close-on-exec), or None if the process is gone or pidfds are absent."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def pidfd_signal(pidfd: int, sig: int) -> bool:
    """Send ``sig`` through a pidfd; False when the process has already exited."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    except OSError:
        return False
    return True


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process in session ``sid``, each checked again after its pidfd opens.

    Returns how many processes were signalled. The pid's session is re-read once the pidfd is
    open, so a pid reused between the /proc scan and the signal is never hit.
    """
    sent = 0
    for pid in session_members(sid):
        fd = pidfd_open(pid)
        if fd is None:
            continue
        try:
            st = stat(pid)
            if st is not None and st.sid == sid and pidfd_signal(fd, sig):
                sent += 1
        finally:
            os.close(fd)
    return sent


def group_exists(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member (zombies count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> bool:
    with contextlib.suppress(OSError):
        os.killpg(pgid, sig)
        return True
    return False


def is_alive(pid: int) -> bool:
    st = stat(pid)
    return st is not None and st.state not in ("Z", "X")


def has_env(pid: int, entry: bytes) -> bool:
    """Whether process ``pid`` was started with ``entry`` (``NAME=value``) in its environment.

    Readable for our own uid's processes (and any, as root); False when unreadable.
    """
    try:
        raw = _read(f"/proc/{pid}/environ", 1 << 20)
    except OSError:
        return False
    return entry in raw.split(b"\0")


def descends_from(pid: int, ancestor: int, limit: int = 64) -> bool:
    """Whether ``ancestor`` is on ``pid``'s chain of parents (now)."""
    for _ in range(limit):
        st = stat(pid)
        if st is None or st.ppid <= 1:
            return False
        if st.ppid == ancestor:
            return True
        pid = st.ppid
    return False


def proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def started_since(ticks: int) -> list[Stat]:
    """Every live process (zombies excluded) that started at or after ``ticks`` since boot."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if name.isdigit():
            st = stat(int(name))
            if st is not None and st.starttime >= ticks and st.state not in ("Z", "X"):
                found.append(st)
    return found


def attach_timers(timers: Any) -> None:
    """Nothing polls on this layer: pidfds wake the selector themselves."""


def become_subreaper() -> bool:
    """Be the child subreaper: orphans of our tree are handed to us, not to init."""
    from attachdaemon_core.osproc.spawn import PR_SET_CHILD_SUBREAPER, prctl  # (spawn is loaded by then)

    return prctl(PR_SET_CHILD_SUBREAPER, 1)


class Live:
    """The process layer as one object (docs/process-model.md, "The portable layer"): this module's
    reads of /proc and its pidfd acts are the ``linux`` layer; ``osproc/portable.py`` overrides
    every member on psutil, and ``osproc/layer.py`` picks one. Pidfile verification
    (:func:`.pidfile.verify`) and the smart daemons' launches read through it, and the engine's OS
    seam (``engine/os_seam.py``) extends it with the acts. Each member is the function itself: one
    attribute lookup, no wrapper.

    ``pidfd_open`` is "tell me when pid N exits": a descriptor that turns readable when it has
    exited, and through which ``pidfd_signal`` signals that process and no other; ``close`` ends
    it. ``become_subreaper`` is False where there is none."""

    subreaper = True  # orphans of the supervisor's tree come to it (become_subreaper)
    stat = staticmethod(stat)
    exe = staticmethod(exe)
    cmdline = staticmethod(cmdline)
    owner_uid = staticmethod(owner_uid)
    is_alive = staticmethod(is_alive)
    has_env = staticmethod(has_env)
    descends_from = staticmethod(descends_from)
    started_since = staticmethod(started_since)
    boot_seconds = staticmethod(boot_seconds)
    boot_id = staticmethod(boot_id)
    pid_max = staticmethod(pid_max)
    proc_pids = staticmethod(proc_pids)
    session_members = staticmethod(session_members)
    live_sessions = staticmethod(live_sessions)
    group_exists = staticmethod(group_exists)
    signal_group = staticmethod(signal_group)
    kill_session = staticmethod(kill_session)
    pidfd_open = staticmethod(pidfd_open)
    pidfd_signal = staticmethod(pidfd_signal)
    close = staticmethod(os.close)
    attach_timers = staticmethod(attach_timers)
    become_subreaper = staticmethod(become_subreaper)
    getpid = staticmethod(os.getpid)
    getppid = staticmethod(os.getppid)
    geteuid = staticmethod(os.geteuid)


LIVE = Live()
