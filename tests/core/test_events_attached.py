"""docs/events.md, "Attached and control daemons": one test per event, with a real owner process
and real daemons.

Test names read as <kind>__<event>__<what happens>.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, alive, probe, wait_for
from tests.helpers.platform import TOUCH_POLL, exit_notice, not_on_portable
from tests.helpers.servers import free_port


def attached(box: Sandbox, name: str, *opts: str, **kw: object) -> DaemonSpec:
    return DaemonSpec(name=name, command=probe(box.events, name, *opts), **kw)  # type: ignore[arg-type]


def test_attached__server_starts__started_in_depends_on_order(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    port = free_port()
    specs = [
        attached(sandbox, "web", depends_on=("db",)),
        DaemonSpec(
            name="db",
            command=probe(sandbox.events, "db", "--port", str(port), "--ready-delay", "0.3"),
            ready=__import__("attachdaemon_core.spec.model", fromlist=["ReadyProbe"]).ReadyProbe(
                tcp=("127.0.0.1", port)
            ),
        ),
    ]
    sandbox.join(owner, specs)
    wait_for(lambda: sandbox.events.starts("web"), 10, "web to start")
    lines = sandbox.events.lines()
    listen_at = next(ns for ns, n, w, _ in lines if n == "db" and w == "LISTEN")
    web_at = sandbox.events.start_times("web")[0]
    assert web_at > listen_at, "web started before db was ready"
    assert sandbox.daemon("db")["ready"] is True


def test_attached__daemon_killed__restarted_at_once(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "a")])
    first = wait_for(lambda: sandbox.running("a"), 5, "a running")
    wait_for(lambda: sandbox.events.starts("a"), 5, "a START")
    t0 = time.monotonic_ns()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(sandbox.events.starts("a")) == 2, 5, "a restarted")
    restarted_after = (sandbox.events.start_times("a")[1] - t0) / 1e6
    assert restarted_after < 500, f"restart took {restarted_after:.1f} ms"
    assert sandbox.daemon("a")["restarts"] == 1
    assert sandbox.daemon("a")["last_exit"]["signal"] == signal.SIGKILL


def test_attached__quick_deaths_in_a_row__back_off(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    spec = DaemonSpec(name="crashy", command=("sh", "-c", "exit 3"), min_uptime=5.0, max_backoff=0.4)
    sandbox.join(owner, [spec])
    wait_for(lambda: sandbox.daemon("crashy")["restarts"] >= 5, 10, "several restarts")
    d = wait_for(lambda: (x := sandbox.daemon("crashy"))["state"] == "backoff" and x, 5, "backoff state")
    assert d["last_exit"]["code"] == 3
    # The delays double (0, 0.1, 0.2, 0.4, 0.4…): ten restarts take well over a second, not a spin.
    t0 = time.monotonic()
    start = sandbox.daemon("crashy")["restarts"]
    wait_for(lambda: sandbox.daemon("crashy")["restarts"] >= start + 3, 10, "three more restarts")
    assert time.monotonic() - t0 >= 0.7


def test_attached__max_retries_reached__fatal(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    spec = DaemonSpec(name="broken", command=("sh", "-c", "exit 1"), max_retries=2, max_backoff=0.05)
    sandbox.join(owner, [spec])
    d = wait_for(lambda: (x := sandbox.daemon("broken"))["state"] == "fatal" and x, 10, "fatal")
    assert d["restarts"] == 2


def test_attached__missing_executable__reported_and_retried_server_unaffected(
    sandbox: Sandbox,
) -> None:
    owner = sandbox.owner()
    specs = [
        DaemonSpec(name="ghost", command=("no-such-program-xyz",), max_backoff=0.2),
        attached(sandbox, "fine"),
    ]
    sandbox.join(owner, specs)
    d = wait_for(lambda: (x := sandbox.daemon("ghost"))["error"] and x, 5, "ghost error")
    assert "no-such-program-xyz" in d["error"] and "not found" in d["error"]
    wait_for(lambda: sandbox.running("fine"), 5, "the other daemon running")
    wait_for(lambda: sandbox.daemon("ghost")["restarts"] >= 2, 5, "retries")


def test_attached__server_reloads__on_reload_restart_keep_signal(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [
        attached(sandbox, "r", on_reload="restart"),
        attached(sandbox, "k", on_reload="keep"),
        attached(sandbox, "s", on_reload="signal", reload_signal=signal.SIGUSR1),
    ]
    sandbox.join(owner, specs)
    pids = {n: wait_for(lambda n=n: sandbox.running(n) and sandbox.events.starts(n), 5, n)[0] for n in "rks"}
    sandbox.reload(owner, specs)
    wait_for(lambda: len(sandbox.events.starts("r")) == 2, 5, "r restarted")
    wait_for(lambda: sandbox.events.signals("s", pids["s"]) == [signal.SIGUSR1], 5, "s signalled")
    assert sandbox.running("k") == pids["k"] and sandbox.running("s") == pids["s"]
    assert not alive(pids["r"])
    assert sandbox.events.signals("r", pids["r"]) == [signal.SIGTERM]


def test_attached__reload_with_changed_declarations__diffed(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    keep = attached(sandbox, "keep", on_reload="keep")
    sandbox.join(owner, [keep, attached(sandbox, "gone"), attached(sandbox, "changed")])
    gone = wait_for(lambda: sandbox.running("gone"), 5, "gone running")
    changed = wait_for(lambda: sandbox.running("changed"), 5, "changed running")
    kept = wait_for(lambda: sandbox.running("keep"), 5, "keep running")
    new = [
        DaemonSpec(name="keep", command=keep.command, on_reload="keep", stop_timeout=3),  # live key
        attached(sandbox, "changed", "--code", "0"),
        attached(sandbox, "added"),
    ]
    sandbox.reload(owner, new)
    wait_for(lambda: sandbox.running("added"), 5, "added started")
    wait_for(lambda: not alive(gone), 5, "removed daemon stopped")
    wait_for(lambda: (p := sandbox.running("changed")) and p != changed, 5, "changed restarted")
    assert sandbox.running("keep") == kept
    assert "gone" not in [d["name"] for d in sandbox.status()["daemons"]]


def test_attached__server_stops_gracefully__stopped(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "a", "--grandchild"), attached(sandbox, "b")])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    b = wait_for(lambda: sandbox.running("b"), 5, "b")
    wait_for(lambda: len(proc.session_members(a)) == 2, 5, "a's grandchild")
    sup = sandbox.supervisor_pid()
    from attachdaemon_core.hosts import runtime

    assert runtime.release(sandbox.runtime_dir, owner.pid, wait=5.0)
    assert not alive(a) and not alive(b) and not proc.session_members(a)
    wait_for(lambda: not alive(sup), 5, "supervisor exit")
    assert sandbox.events.signals("a") == [signal.SIGTERM]


def test_attached__server_sigkilled__stopped_fast_nothing_left(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "a", "--grandchild"), attached(sandbox, "b")])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    b = wait_for(lambda: sandbox.running("b"), 5, "b")
    wait_for(lambda: len(proc.session_members(a)) == 2, 5, "a's grandchild")
    grandchild = next(p for p in proc.session_members(a) if p != a)
    t0 = time.monotonic()
    owner.kill(signal.SIGKILL)
    wait_for(lambda: sandbox.events.signals("a"), 2, "stop signal")
    got_signal = next(ns for ns, n, w, _ in sandbox.events.lines() if n == "a" and w.startswith("SIGNAL"))
    late = 0.1 + exit_notice()  # (portable without kqueue: the owner's exit is polled for)
    assert (got_signal / 1e9) - t0 < late, f"stop began more than {late * 1000:.0f} ms after the owner died"
    wait_for(lambda: not alive(a) and not alive(b) and not alive(grandchild), 3, "all gone")
    assert time.monotonic() - t0 < 3.0


def test_attached__ignores_sigterm__sigkilled_after_stop_timeout(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "stubborn", "--ignore-term", stop_timeout=0.5)])
    pid = wait_for(lambda: sandbox.running("stubborn") and sandbox.events.starts("stubborn"), 5, "up")[0]
    t0 = time.monotonic()
    owner.kill(signal.SIGTERM)
    wait_for(lambda: not alive(pid), 5, "stubborn daemon killed")
    took = time.monotonic() - t0
    assert 0.45 <= took < 2.0, took
    assert sandbox.events.signals("stubborn") == [signal.SIGTERM]
    assert "did not stop within 0.5s; sending SIGKILL" in sandbox.log_text()


def test_attached__supervisor_killed__session_emptied_and_restarted_within_1s(
    sandbox: Sandbox,
) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "a", "--grandchild")])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    wait_for(lambda: len(proc.session_members(a)) == 2, 5, "grandchild")
    members = proc.session_members(a)
    sup = sandbox.supervisor_pid()
    t0 = time.monotonic()
    os.kill(sup, signal.SIGKILL)
    new_a = wait_for(lambda: (p := sandbox.running("a")) and p != a and p, 3, "a running again")
    took = time.monotonic() - t0
    assert took < 1.0, f"back after {took:.2f}s"
    assert not any(alive(p) for p in members)
    st = sandbox.status()["supervisor"]
    assert st["pid"] != sup and st["respawns"] == 1 and st["owners"] == [owner.pid]
    assert alive(new_a)


def test_attached__touch_file_changes__restarted(sandbox: Sandbox, tmp_path: Path) -> None:
    owner = sandbox.owner()
    touch = tmp_path / "reload.touch"
    touch.write_text("x")
    sandbox.join(owner, [attached(sandbox, "t", touch=(str(touch),))])
    first = wait_for(lambda: sandbox.running("t"), 5, "t")
    os.utime(touch, (time.time() + 5, time.time() + 5))
    wait_for(lambda: (p := sandbox.running("t")) and p != first, 5, "t restarted")


def test_attached__stop_start_restart_commands__held_across_reload(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    specs = [attached(sandbox, "a"), attached(sandbox, "b")]
    sandbox.join(owner, specs)
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    b = wait_for(lambda: sandbox.running("b"), 5, "b")
    sandbox.call("stop", names=["a"])
    wait_for(lambda: not alive(a), 5, "a stopped")
    assert sandbox.daemon("a")["state"] == "stopped"
    sandbox.reload(owner, specs)
    wait_for(lambda: (p := sandbox.running("b")) and p != b, 5, "b restarted by the reload")
    assert sandbox.daemon("a")["state"] == "stopped", "a stopped by command came back on reload"
    sandbox.call("start", names=["a"])
    a2 = wait_for(lambda: sandbox.running("a"), 5, "a started")
    sandbox.call("restart", names=["a"])
    wait_for(lambda: (p := sandbox.running("a")) and p != a2, 5, "a restarted")


def test_attached__held_survives_supervisor_respawn(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(owner, [attached(sandbox, "a")])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    sandbox.call("stop", names=["a"])
    wait_for(lambda: not alive(a), 5, "a stopped")
    sup = sandbox.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: sandbox.supervisor_pid() != sup, 3, "new supervisor")
    assert sandbox.daemon("a")["state"] == "stopped"


def test_control__exits__owners_asked_to_shut_down(sandbox: Sandbox) -> None:
    owner = sandbox.owner()
    sandbox.join(
        owner,
        [
            DaemonSpec(name="ctl", command=("sh", "-c", "sleep 0.3; exit 5"), control=True),
            attached(sandbox, "other"),
        ],
    )
    wait_for(lambda: owner.proc.poll() is not None, 5, "owner got SIGTERM")
    assert owner.proc.returncode == -signal.SIGTERM
    wait_for(sandbox.supervisor_gone, 5, "supervisor gone")
    assert "control daemon 'ctl'" in sandbox.log_text() and "exited with status 5" in sandbox.log_text()


def test_touch__restart_is_immediate_without_polling(sandbox: Sandbox, tmp_path: Path) -> None:
    touch = tmp_path / "code.touch"
    touch.write_text("x")
    sandbox.join(sandbox.owner(), [attached(sandbox, "t", touch=(str(touch),))])
    first = wait_for(lambda: sandbox.running("t") and sandbox.events.starts("t"), 5, "t")[0]
    t0 = time.monotonic_ns()
    touch.write_text("y")
    wait_for(lambda: len(sandbox.events.starts("t")) == 2, 5, "t restarted")
    took = (sandbox.events.start_times("t")[1] - t0) / 1e6
    assert took < 300 + TOUCH_POLL * 1000, f"touch restart took {took:.0f} ms"
    assert not alive(first)


@not_on_portable("the runtime directory's removal is heard through inotify only")
def test_runtime_dir_removed__recreated_and_still_answering(sandbox: Sandbox) -> None:
    import shutil

    sandbox.join(sandbox.owner(), [attached(sandbox, "a")])
    a = wait_for(lambda: sandbox.running("a"), 5, "a")
    shutil.rmtree(sandbox.runtime_dir, ignore_errors=True)
    wait_for(lambda: sandbox.running("a") == a, 5, "the supervisor answers again")
    # The removal goes on while the supervisor recovers: its log is recreated when it goes too.
    wait_for(lambda: "vanished; recreating them" in sandbox.log_text(), 5, "the recovery in its log")


def test_second_owner_joins_then_dies__first_owners_declarations_reapplied(sandbox: Sandbox) -> None:
    """gunicorn USR2 then a rollback: the new master (second owner) brings new declarations;
    when it goes away while the old one lives, the old master's declarations come back."""
    old, new = sandbox.owner(), sandbox.owner()
    v1 = [attached(sandbox, "web", on_reload="keep")]
    v2 = [attached(sandbox, "web", on_reload="keep"), attached(sandbox, "worker")]
    sandbox.join(old, v1)
    web = wait_for(lambda: sandbox.running("web"), 5, "web")
    sandbox.join(new, v2)
    worker = wait_for(lambda: sandbox.running("worker"), 5, "the new master's worker")
    assert sandbox.status()["supervisor"]["owners"] == sorted([old.pid, new.pid])
    new.kill(signal.SIGKILL)  # the new master fails: roll back
    wait_for(lambda: not alive(worker), 5, "worker stopped: not in the old declarations")
    wait_for(lambda: [d["name"] for d in sandbox.status()["daemons"]] == ["web"], 5, "v1 again")
    assert sandbox.running("web") == web, "web was kept across the switch and the rollback"
    assert sandbox.status()["supervisor"]["owners"] == [old.pid]
