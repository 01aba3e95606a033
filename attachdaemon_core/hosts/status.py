"""What the commands and the status pages show of a supervisor's status answer.

The stable JSON (docs/status-json.md), the table ``status`` prints, and what counts as healthy.
Runs in the user's shell process or a web worker, never in the supervisor.
"""

from __future__ import annotations

import json
import time

from attachdaemon_core.control import client
from attachdaemon_core.hosts.exits import EXIT_NO_SUPERVISOR, EXIT_NOT_RUNNING, EXIT_OK

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (about 2 ms): mypy reads it alike
if TYPE_CHECKING:
    from typing import Any, TextIO

STATUS_TIMEOUT = 2.0


def command(runtime_dir: str, out: TextIO, err: TextIO, *, as_json: bool) -> int:
    """The ``status`` command: the table, or with ``as_json`` the stable JSON; exit 0 when
    healthy, 3 when not, 4 when no supervisor answers (docs/status-json.md). Needs the control
    client only: ``attachdaemon status`` answers without loading the declarations' code."""
    try:
        result = client.call(runtime_dir, "status", timeout=STATUS_TIMEOUT)
    except (client.NoSupervisor, client.ControlError) as exc:
        from attachdaemon_core.hosts.index import read_index

        reason = f"no supervisor answered within {STATUS_TIMEOUT:g}s in {runtime_dir} ({exc})"
        err.write(f"{reason}\n")
        others = [e for e in read_index() if e.get("runtime_dir") != runtime_dir]
        if others:
            err.write("supervisors recorded for this user:\n")
            for e in others:
                err.write(f"  pid {e.get('pid')}: {e.get('runtime_dir')}\n")
        if as_json:  # scripts parse stdout: one object saying why, never nothing
            out.write(json.dumps(no_supervisor_status(runtime_dir, reason, others), indent=2) + "\n")
        return EXIT_NO_SUPERVISOR
    if as_json:
        out.write(json.dumps(public_status(result), indent=2) + "\n")
    else:
        out.write(format_table(result))
    # A supervisor that no server owns yet (it is starting, or its last owner is leaving) has
    # nothing running for anyone: that is not healthy.
    ok = bool(result["supervisor"]["owners"]) and all(healthy(d) for d in result["daemons"])
    return EXIT_OK if ok else EXIT_NOT_RUNNING


def healthy(d: dict[str, Any]) -> bool:
    state = d["state"]
    if state in ("running", "standby", "scheduled"):
        return True
    if state == "stopped" and (d.get("held") or not d.get("autostart", True)):
        return True
    last = d.get("last_exit") or {}
    return state == "exited" and last.get("code") == 0 and last.get("signal") is None


def no_supervisor_status(runtime_dir: str, reason: str, others: list[dict[str, Any]]) -> dict[str, Any]:
    """``status --json`` when no supervisor answers (exit 4): why, and the supervisors that run."""
    return {
        "supervisor": None,
        "error": reason,
        "runtime_dir": runtime_dir,
        "other_supervisors": [{"pid": e.get("pid"), "runtime_dir": e.get("runtime_dir")} for e in others],
    }


def read_status(runtime_dir: str) -> tuple[dict[str, Any], int]:
    """For the status pages: the public status JSON and an HTTP status, 200, or 503 with an empty
    ``daemons`` list and the reason when no supervisor answers (docs/status-json.md)."""
    try:
        result = client.call(runtime_dir, "status", timeout=STATUS_TIMEOUT)
    except (client.NoSupervisor, client.ControlError) as exc:
        return {"supervisor": None, "daemons": [], "error": str(exc), "runtime_dir": runtime_dir}, 503
    return public_status(result), 200


def public_status(result: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's status answer reduced to the stable JSON of docs/status-json.md."""
    return {
        "supervisor": result["supervisor"],
        "daemons": [
            {k: v for k, v in d.items() if k not in ("autostart", "held")} for d in result["daemons"]
        ],
    }


def _uptime(started: float | None) -> str:
    if started is None:
        return "-"
    secs = int(max(0, time.time() - started))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def job_line(job: dict[str, Any]) -> str:
    """One line on a job for the ``status`` table: schedule, next run, last run, counters."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["next_run"])) if job["next_run"] else "-"
    text = f"schedule {job['schedule']!r}, next run {when}"
    last = job["last_exit"]
    if last is not None:
        how = f"signal {last['signal']}" if last["signal"] else f"exit {last['code']}"
        text += f"; last run {how} after {job['last_duration']}s"
    return text + f"; runs {job['runs']}, skipped {job['skipped']}, timed out {job['timed_out']}"


def _said(d: dict[str, Any]) -> list[str]:
    """A notify daemon's own STATUS= and phase, and the last restart a limit caused."""
    notes = []
    notify, cause = d.get("notify"), d.get("restart_cause")
    if notify and (notify.get("status") or notify.get("phase")):
        phase = f" ({notify['phase']})" if notify.get("phase") else ""
        notes.append(f"  {d['name']}: says {notify.get('status') or ''}{phase}".rstrip())
    if cause:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cause["at"]))
        notes.append(f"  {d['name']}: restarted at {when}, {cause['detail']}")
    return notes


def format_table(result: dict[str, Any]) -> str:
    sup = result["supervisor"]
    rows = [("NAME", "KIND", "STATE", "PID", "UPTIME", "RESTARTS", "READY")]
    notes = []
    for d in result["daemons"]:
        ready = "-" if d["ready"] is None else ("yes" if d["ready"] else "no")
        state = d["state"] + (" (by command)" if d.get("held") and d["state"] == "stopped" else "")
        rows.append(
            (
                d["name"],
                ("job" if d.get("job") else d["kind"])
                + ("+control" if d["control"] else "")
                + ("+oneshot" if d.get("oneshot") else ""),
                state,
                str(d["pid"] or "-"),
                _uptime(d["started_at"]),
                str(d["restarts"]),
                ready,
            )
        )
        if d["error"]:
            notes.append(f"  {d['name']}: {d['error']}")
        if d.get("job"):
            notes.append(f"  {d['name']}: {job_line(d['job'])}")
        notes += _said(d)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"supervisor pid {sup['pid']}, owners {', '.join(map(str, sup['owners'])) or 'none'}, "
        f"up {_uptime(sup['started_at'])}, respawns {sup['respawns']}, {sup['runtime_dir']}"
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines + notes) + "\n"
