"""docs/events.md, "Smart and smart2 daemons": one test per event, real owner process, real daemons."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import PY, Sandbox, alive, probe, wait_for
from tests.helpers.platform import exit_notice


def smart(box: Sandbox, name: str, *opts: str, **kw: object) -> DaemonSpec:
    kw.setdefault("on_reload", "keep")  # the defaults parse_declarations gives smart daemons
    kw.setdefault("log", "runtime")
    pidfile = str(box.tmp / f"{name}.pid")
    return DaemonSpec(
        name=name,
        command=probe(box.events, name, "--daemonize", pidfile, *opts),
        pidfile=pidfile,
        process_name=PY,
        **kw,  # type: ignore[arg-type]
    )


def smart2(box: Sandbox, name: str, *opts: str, **kw: object) -> DaemonSpec:
    kw.setdefault("on_reload", "keep")
    kw.setdefault("log", "runtime")
    return DaemonSpec(
        name=name,
        command=probe(box.events, name, *opts),
        pidfile=str(box.tmp / f"{name}.pid"),
        daemonize=True,
        **kw,  # type: ignore[arg-type]
    )


def pid_in(path: str | None) -> int | None:
    try:
        return int(Path(str(path)).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_smart__server_starts__started_when_no_pidfile(sandbox: Sandbox) -> None:
    spec = smart(sandbox, "s")
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("s"), 10, "s running")
    assert pid == pid_in(spec.pidfile) == sandbox.events.starts("s")[0]
    assert sandbox.daemon("s")["kind"] == "smart"


def test_smart__server_starts__adopted_when_pidfile_names_the_daemon(sandbox: Sandbox) -> None:
    spec = smart(sandbox, "s")
    subprocess.run(spec.command, check=True)  # it daemonizes and writes its pidfile
    pid = wait_for(lambda: pid_in(spec.pidfile), 5, "pidfile")
    sandbox.extra_pids.add(pid)
    sandbox.join(sandbox.owner(), [spec])
    assert wait_for(lambda: sandbox.running("s"), 5, "adopted") == pid
    assert sandbox.events.starts("s") == [pid]
    assert f"daemon 's' adopted (pid {pid}" in sandbox.log_text()


def test_smart__killed__restarted_at_once_without_polling(sandbox: Sandbox) -> None:
    spec = smart(sandbox, "s")
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("s"), 10, "s running")
    t0 = time.monotonic_ns()
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: (p := sandbox.running("s")) and p != pid and p, 5, "restarted")
    took = (sandbox.events.start_times("s")[-1] - t0) / 1e6
    assert new == pid_in(spec.pidfile)
    assert took < 500, f"{took:.0f} ms"
    assert sandbox.daemon("s")["restarts"] == 1


def test_smart__reexecuted_under_new_pid__followed_not_restarted(sandbox: Sandbox) -> None:
    spec = smart(sandbox, "s", "--reexec", str(sandbox.tmp / "s.pid"))
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("s"), 10, "s running")
    os.kill(pid, signal.SIGUSR2)  # forks a new copy that rewrites the pidfile, then exits
    new = wait_for(lambda: (p := sandbox.running("s")) and p != pid and p, 5, "followed")
    assert new == pid_in(spec.pidfile)
    assert sandbox.daemon("s")["restarts"] == 0
    assert "now runs as pid" in sandbox.log_text()


def test_smart__server_reloads__kept_same_pid(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [smart(sandbox, "s"), smart2(sandbox, "s2")]
    sandbox.join(owner, specs)
    s = wait_for(lambda: sandbox.running("s"), 10, "s")
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    sandbox.reload(owner, specs)
    assert sandbox.running("s") == s and sandbox.running("s2") == s2
    assert not sandbox.events.signals("s") and not sandbox.events.signals("s2")


def test_smart__reload_changes_what_the_process_is__restarted(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [smart2(sandbox, "s2")])
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    sandbox.reload(owner, [smart2(sandbox, "s2", env=(("MODE", "new"),))])
    wait_for(lambda: (p := sandbox.running("s2")) and p != s2, 5, "restarted")
    assert not alive(s2)


def test_smart__server_stops_gracefully__kept_running(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [smart(sandbox, "s"), smart2(sandbox, "s2")])
    s = wait_for(lambda: sandbox.running("s"), 10, "s")
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    assert runtime.release(sandbox.runtime_dir, owner.pid, wait=5)
    assert sandbox.supervisor_gone()
    assert alive(s) and alive(s2)
    assert not sandbox.events.signals("s") and not sandbox.events.signals("s2")


def test_smart__server_sigkilled__kept_running_and_readopted_by_next_server(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [smart(sandbox, "s"), smart2(sandbox, "s2")]
    sandbox.join(owner, specs)
    s = wait_for(lambda: sandbox.running("s"), 10, "s")
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    owner.kill(signal.SIGKILL)
    wait_for(sandbox.supervisor_gone, 5, "supervisor exit")
    assert alive(s) and alive(s2)
    sandbox.join(sandbox.owner(), specs)
    assert wait_for(lambda: sandbox.running("s"), 5, "s") == s
    assert wait_for(lambda: sandbox.running("s2"), 5, "s2") == s2
    assert len(sandbox.events.starts("s")) == 1 and len(sandbox.events.starts("s2")) == 1


def test_smart__supervisor_killed__readopted_same_pid(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [smart(sandbox, "s"), smart2(sandbox, "s2")])
    s = wait_for(lambda: sandbox.running("s"), 10, "s")
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    sup = sandbox.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: sandbox.supervisor_pid() != sup, 2, "new supervisor")
    assert wait_for(lambda: sandbox.running("s"), 2, "s") == s
    assert wait_for(lambda: sandbox.running("s2"), 2, "s2") == s2
    os.kill(s2, signal.SIGKILL)  # still watched after the respawn
    wait_for(lambda: (p := sandbox.running("s2")) and p != s2, 5, "s2 restarted")


def test_smart__touch_file_changes__restarted(sandbox: Sandbox) -> None:
    touch = sandbox.tmp / "t"
    touch.write_text("")
    sandbox.join(sandbox.owner(), [smart2(sandbox, "s2", touch=(str(touch),))])
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    wait_for(lambda: sandbox.events.starts("s2"), 5, "its START (signal handlers installed)")
    os.utime(touch, (time.time() + 5, time.time() + 5))
    wait_for(lambda: (p := sandbox.running("s2")) and p != s2, 5, "restarted")
    assert sandbox.events.signals("s2", s2) == [signal.SIGTERM]


def test_smart__stop_start_restart_commands__signal_the_verified_pid(sandbox: Sandbox) -> None:
    spec = smart2(sandbox, "s2")
    sandbox.join(sandbox.owner(), [spec])
    s2 = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    sandbox.call("stop", names=["s2"])
    wait_for(lambda: not alive(s2), 5, "stopped")
    # Heard at once through its pidfd; on the portable layer without kqueue, at the next poll.
    wait_for(lambda: sandbox.daemon("s2")["state"] == "stopped", 0.1 + exit_notice(), "the stop heard")
    assert not Path(str(spec.pidfile)).exists(), "the pidfile we wrote is removed on stop"
    sandbox.call("start", names=["s2"])
    again = wait_for(lambda: sandbox.running("s2"), 5, "started")
    sandbox.call("restart", names=["s2"])
    wait_for(lambda: (p := sandbox.running("s2")) and p != again, 5, "restarted")


def test_smart2__pidfile_written_by_supervisor_atomically(sandbox: Sandbox) -> None:
    spec = smart2(sandbox, "s2")
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("s2"), 10, "s2")
    assert pid_in(spec.pidfile) == pid
    assert not [p for p in os.listdir(sandbox.tmp) if p.endswith(".tmp")]


def test_smart__foreground_command_without_pidfile__failed_start_with_hint(sandbox: Sandbox) -> None:
    spec = DaemonSpec(
        name="fg",
        command=probe(sandbox.events, "fg"),
        pidfile=str(sandbox.tmp / "never.pid"),
        process_name=PY,
        start_timeout=0.5,
        max_retries=0,
    )
    sandbox.join(sandbox.owner(), [spec])
    d = wait_for(lambda: (x := sandbox.daemon("fg"))["state"] in ("fatal", "backoff") and x, 10, "failed")
    assert "daemonize: true" in sandbox.log_text()
    pid = sandbox.events.starts("fg")[0]
    wait_for(lambda: not alive(pid), 5, "the foreground child stopped")
    assert d["error"]
