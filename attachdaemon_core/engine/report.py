"""What the supervisor reports about a daemon: the status JSON of docs/status-json.md and its last log lines.

Pure functions of a daemon's record (plus its /proc stat for resource use, read through the
``stat`` they are given: the OS seam's); the supervisor calls them when a ``status`` or ``logs``
request arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.logs import LogFileRefused, tail_file
from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.layer import LIVE

RAW_NOTE = "log is 'raw': output is not captured"


def sample_usage(d: Daemon, now: float, stat: Callable[[int], proc.Stat | None] = LIVE.stat) -> int | None:
    """Update ``d.cpu_percent`` (over at least 1 s since the previous sample); return its RSS."""
    if d.pid is None:
        return None
    st = stat(d.pid)
    if st is None:
        return None
    if d.cpu_sample is None or d.cpu_sample[0] < now - 10:
        d.cpu_sample = (now, st.cpu_seconds)
    elif now - d.cpu_sample[0] >= 1.0:
        elapsed = now - d.cpu_sample[0]
        d.cpu_percent = round(100.0 * (st.cpu_seconds - d.cpu_sample[1]) / elapsed, 1)
        d.cpu_sample = (now, st.cpu_seconds)
    return st.rss_pages * proc.PAGE_SIZE


def daemon_status(
    d: Daemon,
    *,
    now: float,
    held: bool,
    error: str | None,
    leader: dict[str, Any] | None = None,
    waiting_on: list[dict[str, Any]] | None = None,
    job: dict[str, Any] | None = None,
    stat: Callable[[int], proc.Stat | None] = LIVE.stat,
) -> dict[str, Any]:
    """One entry of the status JSON's ``daemons`` list (plus ``autostart``/``held`` for the CLI)."""
    rss = sample_usage(d, now, stat)
    last = d.last_exit
    running = d.pid is not None
    return {
        "name": d.name,
        "kind": d.spec.kind,
        "control": d.spec.control,
        "oneshot": d.spec.oneshot,
        "state": d.state.value,
        "pid": d.pid if running else d.launcher_pid,
        "ready": d.ready,
        "restarts": d.restarts,
        "started_at": d.started_at if running else None,
        "last_exit": {"code": last.code, "signal": last.signal, "at": last.at} if last else None,
        "cpu_percent": d.cpu_percent if running else None,
        "rss_bytes": rss,
        "error": error,
        "leader": leader,
        "waiting_on": waiting_on or [],
        "job": job,
        "notify": _notify(d),
        "restart_cause": _cause(d),
        "autostart": d.spec.autostart,
        "held": held,
    }


def _notify(d: Daemon) -> dict[str, Any] | None:
    """What a ``ready = {notify = true}`` daemon said of itself in this run (STATUS=, and
    RELOADING=1 / STOPPING=1 as its phase)."""
    if d.spec.ready is None or not d.spec.ready.notify:
        return None
    return {"status": d.status_text, "phase": d.phase}


def _cause(d: Daemon) -> dict[str, Any] | None:
    """The last restart a limit (``max_rss``, ``max_lifetime``, ``restart_at``) or the watchdog caused."""
    cause = d.restart_cause
    if cause is None:
        return None
    return {"limit": cause.limit, "detail": cause.detail, "at": cause.at}


def log_lines(d: Daemon, path: str | None, lines: int, since: object) -> dict[str, Any]:
    """The last ``lines`` lines (or those after sequence number ``since``, for ``logs -f``)."""
    if d.spec.log == "raw":
        return {"mode": "raw", "lines": [], "seq": 0, "note": RAW_NOTE}
    if d.spec.log == "prefix":
        buf = list(d.lines)
        if isinstance(since, int) and not isinstance(since, bool):
            new = d.line_seq - since
            buf = buf[-new:] if 0 < new <= len(buf) else ([] if new <= 0 else buf)
        else:
            buf = buf[-lines:] if lines > 0 else []
        return {"mode": "prefix", "lines": buf, "seq": d.line_seq}
    assert path is not None
    try:
        return {"mode": "file", "path": path, "lines": tail_file(path, lines), "seq": 0}
    except LogFileRefused as exc:
        return {"mode": "file", "path": path, "lines": [], "seq": 0, "note": exc.strerror}
