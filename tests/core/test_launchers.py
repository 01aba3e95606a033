"""Smart daemons started through a launcher: a wrapper script that execs the daemon, an `sh`
script that double-forks it or leaves it in the background, a console script, attach-daemon2's
`cmd=`. The pidfile names a process that is not the declared program, yet our own launch produced
it: it is the daemon, adopted at once, never started a second time.

Each case: exactly one copy runs, is adopted, survives a quiet window past ``start_timeout`` (a
launch adopted wrongly was relaunched after it), restarts once after a kill, outlives the server
and is adopted again by the next one. A launch whose pidfile never appears leaves nothing behind.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path

import pytest

from attachdaemon_core.spec.declarations import check_specs, parse_declarations
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import PROBE, PY, Sandbox, alive, assert_stays, wait_for

START_TIMEOUT = 2.0


def script(box: Sandbox, name: str, body: str) -> str:
    path = box.tmp / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def probe_cmd(box: Sandbox, name: str, *opts: str) -> str:
    return shlex.join([PY, PROBE, str(box.events.path), name, *opts])


def launchers(box: Sandbox) -> dict[str, tuple[tuple[str, ...], str]]:
    """Shape -> (command, pidfile)."""
    pid = {n: str(box.tmp / f"{n}.pid") for n in ("exec", "double", "background", "console", "kv")}
    console = box.tmp / "bin" / "probe-daemon"
    console.parent.mkdir()
    # A console script as pip writes one: the interpreter in the shebang, the daemon's code run
    # from it. /proc/PID/exe is the interpreter.
    console.write_text(
        f"#!{PY}\nimport runpy, sys\nsys.argv[0] = {PROBE!r}\n"
        f"runpy.run_path({PROBE!r}, run_name='__main__')\n"
    )
    console.chmod(0o755)
    return {
        "exec": (
            (script(box, "exec.sh", "exec " + probe_cmd(box, "exec", "--pidfile", pid["exec"])),),
            pid["exec"],
        ),
        "double": (
            (script(box, "double.sh", probe_cmd(box, "double", "--daemonize", pid["double"])),),
            pid["double"],
        ),
        "background": (
            (script(box, "bg.sh", probe_cmd(box, "background", "--pidfile", pid["background"]) + " &"),),
            pid["background"],
        ),
        "console": (
            (str(console), str(box.events.path), "console", "--daemonize", pid["console"]),
            pid["console"],
        ),
    }


def smart(box: Sandbox, name: str, command: tuple[str, ...], pidfile: str) -> DaemonSpec:
    return DaemonSpec(
        name=name,
        command=command,
        pidfile=pidfile,
        start_timeout=START_TIMEOUT,
        on_reload="keep",
        log="runtime",
    )


def pid_in(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def live_copies(box: Sandbox, name: str) -> list[int]:
    return [p for p in box.events.starts(name) if alive(p)]


def check_one_copy_lifecycle(box: Sandbox, spec: DaemonSpec, probe_name: str | None = None) -> None:
    """``probe_name``: the name the stand-in records its events under (default: the daemon's)."""
    name, pidfile = spec.name, str(spec.pidfile)
    owner = box.owner()
    box.join(owner, [spec])
    pid = wait_for(lambda: box.running(name), 10, f"{name} running")
    assert pid == pid_in(pidfile)
    ev = probe_name or name
    assert box.events.starts(ev) == [pid]
    # Quiet window: a launch not recognised as ours would be launched again once start_timeout
    # had passed. Nothing may happen here.
    once = lambda: box.events.starts(ev) == [pid]  # noqa: E731
    assert_stays(once, START_TIMEOUT + 0.5, f"{name} launched once", show=box.log_text)
    assert box.daemon(name)["restarts"] == 0
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: (p := box.running(name)) and p != pid and p, 10, f"{name} restarted")
    assert new == pid_in(pidfile)
    assert live_copies(box, ev) == [new]
    assert box.daemon(name)["restarts"] == 1
    # The server goes away: the smart daemon stays, and the next server adopts it.
    box.call("remove-owner", owner={"pid": owner.pid})
    wait_for(box.supervisor_gone, 10, "supervisor exit")
    assert alive(new)
    box.join(box.owner(), [spec])
    assert wait_for(lambda: box.running(name), 10, f"{name} adopted again") == new
    assert f"daemon {name!r} adopted (pid {new}" in box.log_text()
    assert live_copies(box, ev) == [new]


@pytest.mark.parametrize("shape", ["exec", "double", "background", "console"])
def test_launcher_started_smart_daemon_runs_once_and_is_adopted(sandbox: Sandbox, shape: str) -> None:
    command, pidfile = launchers(sandbox)[shape]
    check_one_copy_lifecycle(sandbox, smart(sandbox, shape, command, pidfile))


def test_attach_daemon2_cmd_through_a_wrapper_script(sandbox: Sandbox) -> None:
    pidfile = str(sandbox.tmp / "kv.pid")
    wrapper = script(sandbox, "my_daemon.sh", probe_cmd(sandbox, "kv", "--daemonize", pidfile))
    (spec,) = parse_declarations([f"attach-daemon2 = cmd={wrapper},pidfile={pidfile},freq={START_TIMEOUT:g}"])
    assert spec.pidfile == pidfile and spec.start_timeout == START_TIMEOUT
    check_one_copy_lifecycle(sandbox, spec, "kv")


def test_pidfile_that_never_appears__launch_ended_before_relaunch_and_at_shutdown(sandbox: Sandbox) -> None:
    """A daemonizing command whose pidfile never appears where declared keeps running, as redis
    does when it cannot write it. What it started is ours: stopped before each relaunch, never
    two at once; the error gives what it printed; nothing is left after the server stops, which
    takes under a second."""
    declared = str(sandbox.tmp / "r.pid")
    elsewhere = str(sandbox.tmp / "elsewhere.pid")
    wrapper = script(
        sandbox,
        "r.sh",
        "echo 'r.sh: starting the daemon'\n" + probe_cmd(sandbox, "r", "--daemonize", elsewhere),
    )
    spec = smart(sandbox, "r", (wrapper,), declared)
    owner = sandbox.owner()
    sandbox.join(owner, [spec])
    wait_for(lambda: len(sandbox.events.starts("r")) >= 3, 30, "three launches")
    starts = sandbox.events.starts("r")
    stops = [p for _, n, what, p in sandbox.events.lines() if n == "r" and what == "STOP"]
    assert set(starts[:-1]) <= set(stops), "a launch was repeated while the previous one lived"
    assert len(live_copies(sandbox, "r")) <= 1
    error = wait_for(lambda: sandbox.daemon("r")["error"], 5, "the error in status")
    assert f"no valid pidfile {declared} after {START_TIMEOUT:g}s" in error
    assert "; its command exited with status 0; its last output: r.sh: starting the daemon" in error
    t0 = time.monotonic()
    sandbox.call("remove-owner", owner={"pid": owner.pid})
    wait_for(sandbox.supervisor_gone, 5, "supervisor exit")
    took = time.monotonic() - t0
    wait_for(lambda: not live_copies(sandbox, "r"), 2, "every copy gone")
    assert took < 1.0, f"shutdown took {took:.2f}s"


def test_missing_pidfile_directory__check_warns__start_creates_it(sandbox: Sandbox) -> None:
    run_dir = sandbox.tmp / "run"  # the README's Django quick start had no run/ directory
    pidfile = str(run_dir / "d.pid")
    spec = smart(
        sandbox, "d", (script(sandbox, "d.sh", probe_cmd(sandbox, "d", "--daemonize", pidfile)),), pidfile
    )
    (problem,) = [p for p in check_specs([spec]) if p.key == "pidfile"]
    assert problem.code == "W005" and f"directory {run_dir} of the pidfile does not exist" in str(problem)
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("d"), 10, "d running")
    assert pid == pid_in(pidfile)
    assert f"daemon 'd': created directory {run_dir} for its pidfile" in sandbox.log_text()


def test_pidfile_directory_that_cannot_be_made__status_says_why__shutdown_fast(sandbox: Sandbox) -> None:
    blocker = sandbox.tmp / "not-a-dir"
    blocker.write_text("a file where the directory should be\n")
    pidfile = str(blocker / "d.pid")
    spec = smart(
        sandbox, "d", (script(sandbox, "d.sh", probe_cmd(sandbox, "d", "--daemonize", pidfile)),), pidfile
    )
    owner = sandbox.owner()
    sandbox.join(owner, [spec])
    error = wait_for(lambda: sandbox.daemon("d")["error"], 5, "the error in status")
    assert error.startswith(f"cannot create the pidfile's directory {blocker}: ")
    assert sandbox.events.starts("d") == []
    t0 = time.monotonic()
    sandbox.call("remove-owner", owner={"pid": owner.pid})
    wait_for(sandbox.supervisor_gone, 5, "supervisor exit")
    assert time.monotonic() - t0 < 1.0


def test_quick_exit_0_while_a_smart_launch_is_pending__not_blamed_on_the_exit_nor_killed(
    sandbox: Sandbox,
) -> None:
    """A launcher's background child, orphaned to the supervisor before its pidfile appears, is
    the smart daemon's (our launch produced it), not a copy that the attached daemon which exits
    0 at that moment left behind. CI caught this in tests/docs/test_status_schema.py: the
    attached `once` (exit 0) was declared to have daemonized, and the smart daemon's process,
    started after it, was killed as its escaped copy."""
    pidfile = str(sandbox.tmp / "late.pid")
    # The launcher leaves a child in its session, which starts the daemon 1.5 s later, and exits.
    late = script(
        sandbox, "late.sh", f"(sleep 1.5; exec {probe_cmd(sandbox, 'late', '--pidfile', pidfile)}) &"
    )
    once = DaemonSpec(name="once", command=(PY, "-c", "import time; time.sleep(0.5)"), restart="never")
    owner = sandbox.owner()
    sandbox.join(owner, [once, smart(sandbox, "late", (late,), pidfile)])
    done = wait_for(lambda: (d := sandbox.daemon("once"))["state"] in ("exited", "fatal") and d, 10, "once")
    assert done["state"] == "exited" and done["error"] is None, (done, sandbox.log_text())
    pid = wait_for(lambda: sandbox.running("late"), 10, "late running")
    assert pid == pid_in(pidfile) and sandbox.events.starts("late") == [pid]
    assert "daemonizes" not in sandbox.log_text()
