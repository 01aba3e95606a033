"""One-shot tasks and depends_on's conditions with real processes under a real supervisor
(docs/declarations.md, "One-shot tasks" and "depends_on"; docs/events.md): a worker that waits
for its migration, a failed migration that holds it (status and the log say why), dependents
that follow a dependency declared with restart = true, and one-shots on a server reload."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from attachdaemon_core.hosts.status import format_table
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, probe, wait_for


def gated_oneshot(fifo: Path) -> list[str]:
    """A one-shot that runs until the test writes its exit status to ``fifo``."""
    return ["/bin/sh", "-c", f'read code < "{fifo}"; exit "$code"']


def release(fifo: Path, code: int) -> None:
    """Tell the one-shot reading ``fifo`` to exit with ``code`` (blocks until it reads)."""
    with open(fifo, "w") as f:
        f.write(f"{code}\n")


def specs(decls: dict[str, Any]) -> tuple[DaemonSpec, ...]:
    return parse_declarations(decls, base_dir="/")


def test_a_worker_waits_for_its_migration_to_complete(sandbox: Sandbox, tmp_path: Path) -> None:
    fifo = tmp_path / "migrate.fifo"
    os.mkfifo(fifo)
    decls = {
        "migrate": {"command": gated_oneshot(fifo), "oneshot": True},
        "worker": {
            "command": list(probe(sandbox.events, "worker")),
            "depends_on": {"migrate": {"condition": "completed"}},
        },
    }
    sandbox.join(sandbox.owner(), specs(decls))
    migrate = wait_for(lambda: (d := sandbox.daemon("migrate"))["state"] == "running" and d, 5, "runs")
    assert migrate["oneshot"] is True and migrate["ready"] is False
    worker = sandbox.daemon("worker")
    assert (worker["state"], worker["pid"]) == ("starting", None)
    assert worker["error"] == "waiting on 'migrate' to complete"
    assert worker["waiting_on"] == [
        {"name": "migrate", "condition": "completed", "failed": False, "why": "'migrate' to complete"}
    ]
    assert sandbox.events.starts("worker") == []
    table = format_table(sandbox.status()).splitlines()  # what `status` prints
    assert [line.split()[:3] for line in table if line.startswith("migrate")] == [
        ["migrate", "attached+oneshot", "running"]
    ]
    assert "  worker: waiting on 'migrate' to complete" in table
    release(fifo, 0)
    wait_for(lambda: sandbox.running("worker"), 5, "worker started once migrate completed")
    migrate = sandbox.daemon("migrate")
    assert (migrate["state"], migrate["ready"], migrate["last_exit"]["code"]) == ("exited", True, 0)
    assert sandbox.daemon("worker")["waiting_on"] == [] and sandbox.daemon("worker")["error"] is None
    assert "one-shot 'migrate' (pid " in sandbox.log_text()
    assert "exited with status 0: completed" in sandbox.log_text()


def test_a_failed_migration_holds_its_dependent_and_says_why(sandbox: Sandbox, tmp_path: Path) -> None:
    fifo = tmp_path / "migrate.fifo"
    os.mkfifo(fifo)
    decls = {
        "migrate": {"command": gated_oneshot(fifo), "oneshot": True},
        "worker": {"command": list(probe(sandbox.events, "worker")), "depends_on": ["migrate"]},
    }
    sandbox.join(sandbox.owner(), specs(decls))
    wait_for(lambda: sandbox.running("migrate"), 5, "migrate runs")
    release(fifo, 3)
    why = "one-shot 'migrate' failed: it exited with status 3"
    worker = wait_for(lambda: (d := sandbox.daemon("worker"))["waiting_on"][0]["failed"] and d, 5, "held")
    assert (worker["state"], worker["pid"]) == ("starting", None)
    assert worker["error"] == f"not starting: {why}"
    assert worker["waiting_on"] == [{"name": "migrate", "condition": "completed", "failed": True, "why": why}]
    migrate = sandbox.daemon("migrate")
    assert (migrate["state"], migrate["ready"], migrate["last_exit"]["code"]) == ("exited", None, 3)
    log = sandbox.log_text()
    assert f"daemon 'worker' not starting: {why}" in log
    assert "exited with status 3: failed; what depends on it does not start" in log
    assert sandbox.events.starts("worker") == []

    sandbox.call("start", names=["migrate"])  # fixed, run again: the worker starts on its own
    wait_for(lambda: sandbox.running("migrate"), 5, "migrate runs again")
    release(fifo, 0)
    wait_for(lambda: sandbox.running("worker"), 5, "worker started after the second run")
    assert len(wait_for(lambda: sandbox.events.starts("worker"), 5, "worker's own start")) == 1


def test_restart_true_dependents_follow_their_dependency(sandbox: Sandbox) -> None:
    decls = {
        "redis": {"command": list(probe(sandbox.events, "redis"))},
        "web": {
            "command": list(probe(sandbox.events, "web")),
            "depends_on": {"redis": {"condition": "ready", "restart": True}},
        },
        "worker": {"command": list(probe(sandbox.events, "worker")), "depends_on": ["redis"]},
    }
    sandbox.join(sandbox.owner(), specs(decls))
    redis = wait_for(lambda: sandbox.running("redis"), 5, "redis")
    web = wait_for(lambda: sandbox.running("web"), 5, "web")
    worker = wait_for(lambda: sandbox.running("worker"), 5, "worker")
    wait_for(lambda: all(sandbox.events.starts(n) for n in ("redis", "web", "worker")), 5, "up")

    os.kill(redis, signal.SIGKILL)  # redis dies and is restarted: web follows, worker stays
    new_redis = wait_for(lambda: (p := sandbox.running("redis")) and p != redis and p, 5, "redis back")
    new_web = wait_for(lambda: (p := sandbox.running("web")) and p != web and p, 5, "web restarted")
    assert sandbox.running("worker") == worker
    assert "daemon 'web' restarting: 'redis', which it depends on with restart = true, went down" in (
        sandbox.log_text()
    )
    wait_for(lambda: len(sandbox.events.starts("web")) == 2, 5, "web's second start recorded")
    # Started again after redis was, in the supervisor's order of spawns (the probes' own START
    # lines race: two interpreters booting at once may record in either order; CI saw it).
    log = sandbox.log_text()
    redis_at = log.index(f"daemon 'redis' started (pid {new_redis})")
    assert redis_at < log.index(f"daemon 'web' started (pid {new_web})"), log

    sandbox.call("stop", names=["redis"])  # while redis is down, web says it waits on it
    held = wait_for(lambda: (d := sandbox.daemon("web"))["pid"] is None and d, 5, "web stopped")
    assert held["state"] == "starting"
    assert held["error"] == "waiting on 'redis' (stopped)"
    assert held["waiting_on"] == [
        {"name": "redis", "condition": "ready", "failed": False, "why": "'redis' (stopped)"}
    ]
    assert sandbox.running("worker") == worker
    sandbox.call("start", names=["redis"])
    wait_for(lambda: (p := sandbox.running("web")) and p != new_web, 5, "web back with redis")
    assert sandbox.running("redis") != new_redis


def test_one_shots_run_again_on_a_reload_only_when_declared_so(sandbox: Sandbox) -> None:
    decls = {
        "collectstatic": {
            "command": list(probe(sandbox.events, "once", "--exit-after", "0")),
            "oneshot": True,
        },
        "warm": {
            "command": list(probe(sandbox.events, "again", "--exit-after", "0")),
            "oneshot": True,
            "rerun_on_reload": True,
        },
        "web": {
            "command": list(probe(sandbox.events, "web")),
            "depends_on": {"warm": {"restart": True}, "collectstatic": "completed"},
            "on_reload": "keep",
        },
    }
    owner = sandbox.owner()
    sandbox.join(owner, specs(decls))
    web = wait_for(lambda: sandbox.running("web"), 5, "web after both one-shots")
    wait_for(lambda: web in sandbox.events.starts("web"), 5, "web's start recorded")
    assert sandbox.daemon("collectstatic")["ready"] and sandbox.daemon("warm")["ready"]
    sandbox.reload(owner, specs(decls))
    wait_for(lambda: len(sandbox.events.starts("again")) == 2, 5, "warm ran again")
    new_web = wait_for(lambda: (p := sandbox.running("web")) and p != web and p, 5, "web followed warm")
    wait_for(lambda: sandbox.daemon("warm")["ready"], 5, "warm completed again")
    assert len(sandbox.events.starts("once")) == 1
    wait_for(lambda: new_web in sandbox.events.starts("web"), 5, "web's second start recorded")
    started = {pid: ns for ns, name, what, pid in sandbox.events.lines() if what == "START"}
    assert started[new_web] > started[sandbox.events.starts("again")[-1]]
    sandbox.reload(owner, specs(decls), policies=False)  # a refresh, not a reload: nothing runs
    warm = sandbox.daemon("warm")  # (a start would have been carried out before the answer)
    assert (warm["state"], warm["restarts"]) == ("exited", 1) and sandbox.running("web") == new_web
