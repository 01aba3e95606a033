"""Limits and planned restarts (docs/declarations.md, "Limits"): the resident memory of each
daemon's process tree, whether it is over ``max_rss``, and when the next planned restart
(``max_lifetime``, ``restart_at``) is due. Times are passed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import NamedTuple

MIB = 1024 * 1024


class ProcInfo(NamedTuple):
    """What the memory check reads of one process (from /proc/PID/stat)."""

    pid: int
    ppid: int
    sid: int
    rss: int  # bytes


class Root(NamedTuple):
    """A daemon's tree: its pid, and its session (attached daemons: every process of it)."""

    pid: int
    sid: int | None


def trees_rss(procs: Iterable[ProcInfo], roots: Mapping[str, Root]) -> dict[str, int]:
    """Each daemon's tree resident memory: its pid, every descendant, and every process in its
    session (a child that double-forked stays in it). One pass over ``procs`` for all daemons;
    a process counts once per daemon."""
    table = list(procs)
    children: dict[int, list[int]] = {}
    by_session: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p.pid)
        by_session.setdefault(p.sid, []).append(p.pid)
        rss[p.pid] = p.rss
    totals = {}
    for name, root in roots.items():
        members: set[int] = set()
        todo = [root.pid] if root.pid in rss else []
        while todo:
            pid = todo.pop()
            if pid not in members:
                members.add(pid)
                todo.extend(children.get(pid, ()))
        if root.sid is not None:
            members.update(by_session.get(root.sid, ()))
        totals[name] = sum(rss[p] for p in members)
    return totals


def rss_over(total: int, limit: int | None) -> str | None:
    """Why the daemon must restart (its tree is over ``max_rss``), or None."""
    if limit is None or total <= limit:
        return None
    return f"max_rss: resident memory {show_bytes(total)} is over the limit of {show_bytes(limit)}"


def show_bytes(n: int) -> str:
    if n >= 1024 * MIB:
        return f"{n / (1024 * MIB):.1f} GiB"
    return f"{n / MIB:.1f} MiB"


def lifetime_left(started: float, max_lifetime: float, now: float) -> float:
    """Seconds until a run that began at ``started`` (monotonic) reaches ``max_lifetime``; <= 0: due."""
    return started + max_lifetime - now


def next_planned(times: Sequence[str], now: float, tz: tzinfo | None = None) -> float:
    """The epoch time of the first of ``times`` (``HH:MM``, local in ``tz``; None: the system's
    local zone, summer time included) strictly after ``now`` (epoch seconds)."""
    if not times:
        raise ValueError("no times")
    today = datetime.fromtimestamp(now, tz).date()
    best: float | None = None
    for offset in range(3):  # today, tomorrow, and a day more for a zone change skipping one
        day = today + timedelta(days=offset)
        for text in times:
            hour, minute = (int(x) for x in text.split(":"))
            when = datetime.combine(day, time(hour, minute), tzinfo=tz).timestamp()
            if when > now and (best is None or when < best):
                best = when
        if best is not None:
            return best
    raise ValueError(f"no next time for {times}")  # unreachable for valid HH:MM


def planned_due(target: float, now: float, slack: float = 1.0) -> bool:
    """A planned-restart timer fired: is its wall-clock time really reached (the monotonic timer
    and the wall clock drift apart when the clock is set)?"""
    return now >= target - slack
