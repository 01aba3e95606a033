"""The ``events`` and ``metrics`` commands (docs/monitoring.md), for every command line.

Runs in the user's shell process, never in the supervisor. ``events -f`` holds one connection
that the supervisor pushes each event into (no polling); when the supervisor goes away it waits
up to ``RESPAWN_WAIT`` seconds for the guard to start it again and goes on from the last event
it printed.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, TextIO

from attachdaemon_core.control import client
from attachdaemon_core.hosts.exits import EXIT_BAD, EXIT_NO_SUPERVISOR, EXIT_OK, RESPAWN_WAIT, control_failed
from attachdaemon_core.hosts.metrics import MetricsUnavailable, render_answer
from attachdaemon_core.hosts.status import STATUS_TIMEOUT

if TYPE_CHECKING:
    from attachdaemon_core.hosts.commands import Context


def metrics(ctx: Context, out: TextIO, err: TextIO) -> int:
    try:
        answer = client.call(ctx.runtime_dir, "metrics", timeout=STATUS_TIMEOUT)
        text, _ = render_answer(answer)
    except MetricsUnavailable as exc:
        err.write(f"metrics: {exc}\n")
        return EXIT_BAD
    except (client.NoSupervisor, client.ControlError) as exc:
        return control_failed(exc, "metrics", err)
    out.write(text.decode())
    return EXIT_OK


def events(ctx: Context, after: int, follow: bool, as_json: bool, out: TextIO, err: TextIO) -> int:
    if after < 0:
        err.write("events: --after must be 0 or more\n")
        return EXIT_BAD
    if not follow:
        try:
            answer = client.call(ctx.runtime_dir, "events", after=after)
        except (client.NoSupervisor, client.ControlError) as exc:
            return control_failed(exc, "events", err)
        _backlog(answer, after, as_json, out, err)
        return EXIT_OK
    try:
        return _follow(ctx, after, as_json, out, err)
    except KeyboardInterrupt:
        return EXIT_OK


def _follow(ctx: Context, after: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    supervisor: int | None = None  # the pid that answered; None until one did
    while True:
        try:
            for n, obj in enumerate(client.stream(ctx.runtime_dir, "events", after=after, follow=True)):
                if n == 0:  # the answer: the events kept after ``after``
                    supervisor = obj.get("supervisor")
                    after = _backlog(obj, after, as_json, out, err)
                    continue
                event = obj.get("event")
                if isinstance(event, dict):
                    _print(event, as_json, out)
                    after = int(event["seq"])
        except client.ControlError as exc:
            err.write(f"events: {exc}\n")
            return EXIT_BAD
        except client.NoSupervisor as exc:
            if supervisor is None:
                err.write(f"{exc}\n")
                return EXIT_NO_SUPERVISOR
            back = _comes_back(ctx)
            if back is None:
                err.write(f"events: the supervisor went away ({exc})\n")
                return EXIT_OK
            if back != supervisor:
                err.write(
                    f"events: supervisor pid {back} took over from {supervisor}; its numbers start at 1\n"
                )
                after = 0


def _comes_back(ctx: Context) -> int | None:
    """The pid of the supervisor answering within RESPAWN_WAIT, or None."""
    end = time.monotonic() + RESPAWN_WAIT
    while time.monotonic() < end:
        try:
            return int(client.call(ctx.runtime_dir, "ping", timeout=1.0)["pid"])
        except (client.NoSupervisor, client.ControlError):
            time.sleep(0.1)
    return None


def _backlog(answer: dict[str, Any], after: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the events of an answer; return the last sequence number printed (or ``after``)."""
    if answer.get("restarted"):
        err.write(f"events: nothing after #{after} here: numbers start at 1 in each supervisor process\n")
    if answer.get("missed"):
        err.write(f"events: {answer['missed']} event(s) after #{after} were no longer kept\n")
    last = after
    for event in answer.get("events", []):
        _print(event, as_json, out)
        last = int(event["seq"])
    return last


def _print(event: dict[str, Any], as_json: bool, out: TextIO) -> None:
    out.write((json.dumps(event, separators=(",", ":")) if as_json else describe(event)) + "\n")
    out.flush()


_TEXT = {
    "started": "started (pid {pid})",
    "start-failed": "could not start: {reason}",
    "exited": "(pid {pid}) {status}",
    "restarting": "restarting in {delay:g}s",
    "ready": "ready",
    "fatal": "fatal: {reason}",
    "stopped": "stopped",
    "leader-acquired": "acquired leader lock {lock!r}",
    "leader-lost": "lost leader lock {lock!r}: {reason}",
}


def describe(event: dict[str, Any]) -> str:
    """One event as a line of text: ``2026-12-06 20:31:02 #7 kv (pid 4242) exited with status 1``."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("at", 0)))
    fields = {k: v for k, v in event.items() if k not in ("seq", "at", "event", "daemon")}
    try:
        what = _TEXT[event["event"]].format(**fields)
    except (KeyError, ValueError, IndexError):
        what = " ".join([event.get("event", "?"), *(f"{k}={v}" for k, v in fields.items())])
    if event.get("event") == "started" and event.get("adopted"):
        what = f"adopted (pid {event.get('pid')})"
    who = event.get("daemon") or "supervisor"
    return f"{when} #{event.get('seq')} {who} {what}"
