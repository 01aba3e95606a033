"""The portable process layer: psutil for identity, children and times; ``os.getsid``,
``os.getpgid`` and ``os.killpg`` for sessions and groups; ``exitwatch`` for exits
(docs/process-model.md, "The portable layer"). Imported only when ``osproc/layer.py`` chose it,
so the linux layer never loads psutil. Product code here reads no /proc file itself.

Start times are kept in the linux layer's unit, clock ticks since boot, derived from psutil's
``create_time`` and ``boot_time`` (on Linux, exactly /proc's value), so the state file, pidfile
checks and ``Stat`` mean the same in both layers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.exitwatch import WATCHES, TimersLike

BOOT = psutil.boot_time()  # read once: every start time of this process is counted from it
PID_MAX = 4194304  # the largest pid any system hands out (Linux's ceiling; macOS stops at 99999)
_STATES = {
    psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X",
    psutil.STATUS_RUNNING: "R",
    psutil.STATUS_STOPPED: "T",
}


def read_clocks() -> tuple[float, float]:
    """(wall clock, seconds since boot): CLOCK_BOOTTIME where it exists (Linux, where psutil's
    start times are /proc's), else the wall clock less the boot instant psutil reports."""
    now = time.time()
    if hasattr(time, "CLOCK_BOOTTIME"):
        return now, time.clock_gettime(time.CLOCK_BOOTTIME)
    return now, now - BOOT


if not hasattr(time, "CLOCK_BOOTTIME"):  # Stat.started_at and .age count through proc.CLOCKS
    proc.CLOCKS[0] = read_clocks


def ticks_of(created: float) -> int:
    return round((created - BOOT) * proc.CLK_TCK)


def _sid(pid: int) -> int | None:
    """The session of ``pid``; None where the system refuses to say (BSDs may answer EPERM for
    another session's process: callers fall back to a descendant walk, ``session_members``)."""
    try:
        return os.getsid(pid)
    except PermissionError:
        return None


def stat(pid: int) -> proc.Stat | None:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            created, state, ppid, name = p.create_time(), p.status(), p.ppid(), p.name()
            utime = stime = rss = 0
            with contextlib.suppress(psutil.AccessDenied):  # another user's process on macOS
                times = p.cpu_times()
                utime, stime = round(times.user * proc.CLK_TCK), round(times.system * proc.CLK_TCK)
                rss = p.memory_info().rss
        pgid = os.getpgid(pid)
        sid = _sid(pid)
    except (psutil.Error, OSError):
        return None
    return proc.Stat(
        pid=pid,
        comm=name,
        state=_STATES.get(state, "S"),
        ppid=ppid,
        pgid=pgid,
        sid=-1 if sid is None else sid,
        utime=utime,
        stime=stime,
        starttime=ticks_of(created),
        rss_pages=rss // proc.PAGE_SIZE,
    )


def exe(pid: int) -> str | None:
    try:
        path = psutil.Process(pid).exe()
    except psutil.Error:
        return None
    return os.path.realpath(path.removesuffix(" (deleted)")) if path else None


def cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def owner_uid(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).uids().effective)
    except psutil.Error:
        return None


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def has_env(pid: int, entry: bytes) -> bool:
    name, _, value = os.fsdecode(entry).partition("=")
    try:
        return psutil.Process(pid).environ().get(name) == value
    except psutil.Error:
        return False


def descends_from(pid: int, ancestor: int, limit: int = 64) -> bool:
    for _ in range(limit):
        try:
            ppid = psutil.Process(pid).ppid()
        except psutil.Error:
            return False
        if ppid <= 1:
            return False
        if ppid == ancestor:
            return True
        pid = ppid
    return False


def _live() -> list[int]:
    """Every pid psutil sees, zombies excluded."""
    found = []
    for p in psutil.process_iter(["status"]):
        if p.info["status"] not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            found.append(p.pid)
    return found


def started_since(ticks: int) -> list[proc.Stat]:
    found = []
    for pid in _live():
        st = stat(pid)
        if st is not None and st.starttime >= ticks and st.state not in ("Z", "X"):
            found.append(st)
    return found


def session_members(sid: int) -> list[int]:
    """Every live pid in session ``sid``. Where ``getsid`` is refused (EPERM, as the BSDs may for
    another session), a process counts when it descends from the session's leader ``sid``."""
    members = []
    for pid in _live():
        try:
            found = _sid(pid)
        except ProcessLookupError:
            continue
        if found == sid or (found is None and descends_from(pid, sid)):
            members.append(pid)
    return members


def live_sessions() -> set[int]:
    sids = set()
    for pid in _live():
        with contextlib.suppress(OSError):
            found = _sid(pid)
            if found is not None:
                sids.add(found)
    return sids


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process in session ``sid``; each one's session and start time are
    read again right before its ``os.kill`` (the race left is the exitwatch module's)."""
    sent = 0
    for pid in session_members(sid):
        st = stat(pid)
        if st is None or st.state in ("Z", "X") or st.sid not in (sid, -1):
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if ticks_of(psutil.Process(pid).create_time()) == st.starttime:
                os.kill(pid, sig)
                sent += 1
    return sent


def boot_seconds() -> float:
    return proc.CLOCKS[0]()[1]


def boot_id() -> str:
    """The boot instant in whole seconds: what tells one boot from the next without /proc."""
    return f"boot-{int(BOOT)}"


def pid_max() -> int:
    return PID_MAX


def proc_pids() -> list[int]:
    return list(psutil.pids())


def pidfd_open(pid: int) -> int | None:
    return WATCHES.open(pid)


def pidfd_signal(pidfd: int, sig: int) -> bool:
    return WATCHES.signal(pidfd, sig)


def close(fd: int) -> None:
    WATCHES.close(fd)


def attach_timers(timers: TimersLike) -> None:
    WATCHES.attach(timers)


def no_subreaper() -> bool:
    return False


def usage_table() -> dict[int, tuple[int, int, int, int, int]]:
    """For ``usage.tree_usage``: pid -> (ppid, sid, own ticks, reaped children's ticks, rss pages)
    of every live process whose numbers are readable."""
    table = {}
    for p in psutil.process_iter(["ppid", "status", "cpu_times", "memory_info"]):
        info = p.info
        times, memory = info["cpu_times"], info["memory_info"]
        if info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) or times is None or memory is None:
            continue
        with contextlib.suppress(OSError):
            sid = _sid(p.pid)
            table[p.pid] = (
                info["ppid"],
                -1 if sid is None else sid,
                round((times.user + times.system) * proc.CLK_TCK),
                round((times.children_user + times.children_system) * proc.CLK_TCK),
                memory.rss // proc.PAGE_SIZE,
            )
    return table


def own_sizes() -> tuple[int, int]:
    """(open descriptors, virtual memory bytes) of this process."""
    me = psutil.Process()
    try:
        fds = me.num_fds()
    except psutil.Error:
        fds = -1
    return fds, me.memory_info().vms


class Portable(proc.Live):
    """The portable layer: every member of :class:`~attachdaemon_core.osproc.proc.Live` on
    psutil, getsid/getpgid/killpg and ``exitwatch``."""

    subreaper = False  # orphans go to init (or to an outer subreaper), never to the supervisor
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
    kill_session = staticmethod(kill_session)
    pidfd_open = staticmethod(pidfd_open)
    pidfd_signal = staticmethod(pidfd_signal)
    close = staticmethod(close)
    attach_timers = staticmethod(attach_timers)
    become_subreaper = staticmethod(no_subreaper)
