"""Every runnable corpus line, run for real under one supervisor with stand-in programs.

Each daemon must run exactly once, be adopted (its pidfile naming it, for smart lines), stay one
copy through a quiet window past its start timeout, restart once after a SIGKILL, and be gone
(attached) or still running (smart) after the server stops gracefully — with never a second copy.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace

from tests.corpus import runtime
from tests.corpus.uwsgi_lines import LINES, SHAPES
from tests.helpers.harness import Sandbox, alive, assert_stays, wait_for

START_TIMEOUT = 4.0  # past the Python stand-ins' start-up when 46 start at once on 2 loaded cores


def test_every_runnable_corpus_line_runs_once_is_adopted_restarts_once_and_stops_right(
    sandbox: Sandbox,
) -> None:
    entries = [c for c in LINES if c.shape is not None and c.expect is not None]
    assert {c.shape for c in entries} == set(SHAPES), "every runtime shape is represented"
    prepared = runtime.prepare(entries, sandbox.tmp)
    specs = [replace(p.spec, start_timeout=START_TIMEOUT, stop_timeout=3.0) for p in prepared]
    idents = {p.spec.name: p.ident for p in prepared}
    owner = sandbox.owner()
    sandbox.join(owner, specs)

    def all_running() -> dict[str, int] | None:
        pids = {d["name"]: d["pid"] for d in sandbox.status()["daemons"] if d["state"] == "running"}
        return pids if len(pids) == len(specs) else None

    ev = sandbox.events
    first = wait_for(all_running, 30, "every corpus daemon running")
    # Running as soon as spawned (attached): its stand-in records START a moment later.
    wait_for(lambda: all(ev.starts(idents[s.name]) for s in specs), 15, "every stand-in's START")
    duplicates = []

    def copies(name: str) -> list[int]:
        return [p for p in ev.starts(idents[name]) if alive(p)]

    for spec in specs:
        assert ev.starts(idents[spec.name]) == [first[spec.name]], (spec.name, idents[spec.name], ev.lines())

    def launched_again() -> list[str]:
        starts: dict[str, list[int]] = {}
        for _, name, what, pid in ev.lines():  # one read of the events file for every daemon
            if what == "START":
                starts.setdefault(name, []).append(pid)
        return [s.name for s in specs if starts.get(idents[s.name]) != [first[s.name]]]

    # Quiet window: a launch not recognised as the daemon would be launched again once
    # start_timeout had passed; nothing may start here.
    assert_stays(
        lambda: not launched_again(), START_TIMEOUT + 0.5, "no daemon launched again", show=launched_again
    )
    for pid in first.values():
        os.kill(pid, signal.SIGKILL)

    def all_restarted() -> dict[str, int] | None:
        now = all_running()
        return now if now and all(now[n] != first[n] for n in now) else None

    second = wait_for(all_restarted, 30, "every corpus daemon restarted")
    wait_for(lambda: all(len(ev.starts(idents[s.name])) >= 2 for s in specs), 15, "every new START")
    for spec in specs:
        starts = ev.starts(idents[spec.name])
        assert starts[-1] == second[spec.name] and len(starts) == 2, (spec.name, starts)
        if copies(spec.name) != [second[spec.name]]:
            duplicates.append(spec.name)
    sandbox.call("remove-owner", owner={"pid": owner.pid})
    wait_for(sandbox.supervisor_gone, 15, "supervisor exit")
    for spec in specs:
        expected = [] if spec.pidfile is None else [second[spec.name]]
        assert copies(spec.name) == expected, (spec.name, spec.kind)
    runtime.RESULTS["shapes"] = len({e.shape for e in entries})
    runtime.RESULTS["runtime_lines"] = len(specs)
    runtime.RESULTS["duplicates"] = len(duplicates)
    assert not duplicates, duplicates
