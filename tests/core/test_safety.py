"""docs/process-model.md, "How a pidfile is trusted": pid identity, pidfile parsing, one supervisor
per runtime directory, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc import pidfile, proc
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import PY, Sandbox, alive, probe, supervisor_pids, wait_for
from tests.helpers.platform import PORTABLE


def smart2(box: Sandbox, name: str, pid_path: Path) -> DaemonSpec:
    return DaemonSpec(
        name=name,
        command=probe(box.events, name),
        pidfile=str(pid_path),
        daemonize=True,
        on_reload="keep",
        log="runtime",
    )


def test_pidfile_naming_an_unrelated_process__not_adopted_not_signalled(sandbox: Sandbox) -> None:
    unrelated = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    sandbox.extra_pids.add(unrelated.pid)
    try:
        path = sandbox.tmp / "d.pid"
        path.write_text(f"{unrelated.pid}\n")
        owner = sandbox.owner()
        sandbox.join(owner, [smart2(sandbox, "d", path)])
        pid = wait_for(lambda: sandbox.running("d"), 5, "d started")
        assert pid != unrelated.pid
        assert wait_for(lambda: sandbox.events.starts("d"), 5, "START") == [pid]
        assert f"names pid {unrelated.pid}, which is not the daemon" in sandbox.log_text()
        sandbox.call("stop", names=["d"])
        wait_for(lambda: not alive(pid), 5, "d stopped")
        owner.kill()
        wait_for(sandbox.supervisor_gone, 5, "supervisor gone")
        assert unrelated.poll() is None, "the unrelated process was signalled"
    finally:
        unrelated.kill()
        unrelated.wait()


@pytest.mark.parametrize(
    ("content", "logged"),
    [
        ("1\n", "pidfile holds 1, not a daemon's pid"),
        ("garbage\n", "pidfile does not hold a pid: 'garbage'"),
        ("99999999999999\n", "pidfile holds 99999999999999, not a daemon's pid"),
        ("", "pidfile is empty"),
    ],
)
def test_bad_pidfile_content__clear_log_line_and_daemon_started(
    sandbox: Sandbox, content: str, logged: str
) -> None:
    path = sandbox.tmp / "d.pid"
    path.write_text(content)
    sandbox.join(sandbox.owner(), [smart2(sandbox, "d", path)])
    pid = wait_for(lambda: sandbox.running("d"), 5, "d started")
    assert wait_for(lambda: sandbox.events.starts("d"), 5, "START") == [pid]
    assert logged in sandbox.log_text()


def test_pidfile_symlink__refused(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.write_text(f"{os.getpid()}\n")
    link = tmp_path / "link.pid"
    link.symlink_to(target)
    assert pidfile.read_pidfile(str(link)).reason == "pidfile is a symbolic link; refused"
    fifo = tmp_path / "fifo.pid"
    os.mkfifo(fifo)
    assert pidfile.read_pidfile(str(fifo)).reason == "pidfile is not a regular file; refused"
    big = tmp_path / "big.pid"
    big.write_text("1" * 5000)
    assert pidfile.read_pidfile(str(big)).reason == "pidfile is larger than 4096 bytes; refused"


def test_pidfile_older_than_the_process_it_names__reused_pid_refused(tmp_path: Path) -> None:
    p = subprocess.Popen(["sleep", "100"])
    try:
        why = pidfile.verify(
            p.pid,
            programs=("sleep",),
            mtime=proc.stat(p.pid).started_at - 60,  # type: ignore[union-attr]
            file_uid=os.geteuid(),
        )
        assert why is not None and "a reused pid" in why
        assert pidfile.verify(p.pid, programs=("memcached",), mtime=1e12, file_uid=os.geteuid()) == (
            f"process {p.pid} runs /usr/bin/sleep, not memcached"
        )
        assert pidfile.verify(p.pid, programs=("sleep",), mtime=1e12, file_uid=os.geteuid()) is None
    finally:
        p.kill()
        p.wait()


def test_two_supervisors_started_at_once__each_daemon_runs_once(sandbox: Sandbox) -> None:
    owners = [sandbox.owner() for _ in range(4)]
    spec = DaemonSpec(name="once", command=probe(sandbox.events, "once"), on_reload="keep")
    errors: list[BaseException] = []

    def join(o: object) -> None:
        try:
            sandbox.join(o, [spec])  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=join, args=(o,)) for o in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    pid = wait_for(lambda: sandbox.running("once"), 5, "once running")
    assert wait_for(lambda: sandbox.events.starts("once"), 5, "START") == [pid]
    assert sorted(sandbox.status()["supervisor"]["owners"]) == sorted(o.pid for o in owners)

    def supervisors() -> list[int]:
        return supervisor_pids(sandbox.runtime_dir)

    # Racing starters that lost the lock exit on their own; one supervisor remains.
    assert wait_for(lambda: len(supervisors()) == 1 and supervisors(), 5, "one supervisor") == [
        sandbox.supervisor_pid()
    ]


def test_owner_sigkilled__no_attached_daemon_or_grandchild_survives(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [
        DaemonSpec(name=f"g{i}", command=probe(sandbox.events, f"g{i}", "--grandchild")) for i in range(3)
    ]
    sandbox.join(owner, specs)
    leaders = [wait_for(lambda i=i: sandbox.running(f"g{i}"), 5, "up") for i in range(3)]
    for leader in leaders:
        wait_for(lambda leader=leader: len(proc.session_members(leader)) == 2, 5, "grandchild")
    everyone = [p for leader in leaders for p in proc.session_members(leader)]
    owner.kill(signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in everyone), 3, "every daemon and grandchild gone")


def test_supervisor_and_guard_both_killed__next_supervisor_empties_recorded_sessions(
    sandbox: Sandbox,
) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [DaemonSpec(name="a", command=probe(sandbox.events, "a", "--grandchild"))])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    wait_for(lambda: len(proc.session_members(a)) == 2, 5, "grandchild")
    grandchild = next(p for p in proc.session_members(a) if p != a)
    sup = sandbox.supervisor_pid()
    guard = sandbox.guard_pid(sup)
    assert guard is not None and proc.stat(guard).comm == "ad-guard"  # type: ignore[union-attr]
    os.kill(guard, signal.SIGSTOP)  # freeze the guard so it cannot clean up, then kill both
    os.kill(sup, signal.SIGKILL)
    os.kill(guard, signal.SIGKILL)
    # The attached daemon dies with its parent (parent-death signal); its grandchild does not. The
    # portable layer has no parent-death signal: there both live on until the next supervisor.
    if not PORTABLE:
        wait_for(lambda: not alive(a), 3, "a gone with its parent")
    assert alive(grandchild)
    runtime.join(
        sandbox.runtime_dir,
        owner.pid,
        runtime.payload([DaemonSpec(name="a", command=probe(sandbox.events, "a"))], source="test"),
    )
    wait_for(lambda: not alive(grandchild) and not alive(a), 3, "the recorded session emptied")
    wait_for(lambda: sandbox.running("a"), 5, "a running again")


def test_runtime_dir_open_to_others__refused(tmp_path: Path) -> None:
    loose = tmp_path / "rt"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(runtime.RuntimeDirError, match="has mode 755, open to others; refused"):
        runtime.ensure_dir(str(loose))


def test_daemons_inherit_no_descriptor_and_no_server_variable(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "fds.txt"
    script = (
        "import os; fds = sorted(os.listdir('/proc/self/fd')); "
        "env = sorted(k for k in os.environ if k.startswith(('GUNICORN_', 'WERKZEUG_')) or k == 'RUN_MAIN'); "
        f"open({str(out)!r}, 'w').write(repr((fds, env)))"
    )
    os.environ["GUNICORN_FD"] = "5"
    os.environ["RUN_MAIN"] = "true"
    try:
        sandbox.join(sandbox.owner(), [DaemonSpec(name="fd", command=(PY, "-c", script), restart="never")])
    finally:
        del os.environ["GUNICORN_FD"], os.environ["RUN_MAIN"]
    text = wait_for(lambda: out.exists() and out.read_text(), 5, "report")
    fds, leaked = eval(text)
    assert leaked == []
    assert set(fds) <= {"0", "1", "2", "3"}  # 3 is listdir's own directory fd


def test_two_supervisors_never_manage_one_smart_daemon(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.tmp / "shared.pid"
    sandbox.join(sandbox.owner(), [smart2(sandbox, "d", path)])
    pid = wait_for(lambda: sandbox.running("d"), 5, "d running")
    other = Sandbox(tmp_path / "other")
    (tmp_path / "other").mkdir()
    try:
        other.join(other.owner(), [smart2(other, "d", path)])
        d = wait_for(lambda: (x := other.daemon("d"))["state"] == "fatal" and x, 5, "refused")
        assert d["error"] == f"pidfile {path} is managed by another supervisor"
        assert sandbox.running("d") == pid
    finally:
        assert not other.cleanup()
