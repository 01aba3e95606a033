"""Resource use read from /proc when asked (a metrics scrape), never sampled in the background.

``tree_usage`` sums a daemon's whole process tree (docs/monitoring.md): the process, its
descendants, and the other members of the session it leads (what a daemon forks and leaves
behind stays in its session). ``own_usage`` is the calling process's ``process_*`` numbers.
On the portable layer both are read through psutil (``portable.usage_table``, ``own_sizes``).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass

from attachdaemon_core.osproc import layer, proc

__all__ = ["TreeUsage", "own_usage", "tree_usage"]


@dataclass(frozen=True)
class TreeUsage:
    rss_bytes: int
    cpu_seconds: float  # live processes' user + system time, plus what the root reaped
    processes: int


@dataclass(frozen=True)
class _Proc:
    ppid: int
    sid: int
    ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: its children it waited for
    rss_pages: int


def _all_procs() -> dict[int, _Proc]:
    """Every readable live process, from one read of each /proc/PID/stat."""
    found: dict[int, _Proc] = {}
    if layer.PORTABLE:
        from attachdaemon_core.osproc.portable import usage_table

        return {pid: _Proc(*row) for pid, row in usage_table().items()}
    try:
        names = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return found
    for name in names:
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read(4096)
            # Fields after the ")" that ends the command name: state ppid pgrp session ...
            rest = raw[raw.rfind(b")") + 2 :].split()
            if rest[0] in (b"Z", b"X"):
                continue
            found[int(name)] = _Proc(
                ppid=int(rest[1]),
                sid=int(rest[3]),
                ticks=int(rest[11]) + int(rest[12]),
                reaped_ticks=int(rest[13]) + int(rest[14]),
                rss_pages=int(rest[21]),
            )
        except (OSError, IndexError, ValueError):
            continue
    return found


def tree_usage(roots: Mapping[str, int]) -> dict[str, TreeUsage]:
    """For each name -> pid: the summed use of that pid's tree, read from one pass over /proc.
    A pid that is gone is left out."""
    stats = _all_procs()
    children: dict[int, list[int]] = {}
    by_session: dict[int, list[int]] = {}
    for pid, p in stats.items():
        children.setdefault(p.ppid, []).append(pid)
        by_session.setdefault(p.sid, []).append(pid)
    out: dict[str, TreeUsage] = {}
    for name, root in roots.items():
        if root not in stats:
            continue
        members = {root}
        todo = [root, *(by_session.get(root, []) if stats[root].sid == root else [])]
        while todo:
            pid = todo.pop()
            members.add(pid)
            todo.extend(c for c in children.get(pid, []) if c not in members)
        rss = sum(stats[p].rss_pages for p in members) * proc.PAGE_SIZE
        ticks = sum(stats[p].ticks for p in members) + stats[root].reaped_ticks
        out[name] = TreeUsage(rss, ticks / proc.CLK_TCK, len(members))
    return out


def own_usage() -> dict[str, float]:
    """This process's numbers, named as prometheus_client's ProcessCollector names them."""
    st = layer.LIVE.stat(os.getpid())
    times = os.times()
    if layer.PORTABLE:
        from attachdaemon_core.osproc.portable import own_sizes

        fds, vsize = own_sizes()
    else:
        fds, vsize = _own_sizes()
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cpu_seconds_total": times.user + times.system,
        "resident_memory_bytes": float(st.rss_pages * proc.PAGE_SIZE) if st else 0.0,
        "virtual_memory_bytes": float(vsize),
        "start_time_seconds": st.started_at if st else time.time(),
        "open_fds": float(fds),
        "max_fds": float(soft),
    }


def _own_sizes() -> tuple[int, int]:
    """(open descriptors, virtual memory bytes) of this process, from /proc/self."""
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    vsize = 0
    try:
        with open("/proc/self/statm", "rb") as f:
            vsize = int(f.read().split()[0]) * proc.PAGE_SIZE
    except (OSError, IndexError, ValueError):
        pass
    return fds, vsize
