"""Readiness a daemon reports itself (issue 13 §2), with real daemons under a real supervisor:
sd_notify from a Python daemon speaking the protocol and from systemd's own ``systemd-notify``,
the sender check, the watchdog, and a log line matching a regex (captured and file logs)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.hosts.status import format_table
from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.declarations import parse_declarations
from tests.helpers.harness import Sandbox, alive, assert_stays, wait_for

DAEMON = str(Path(__file__).parent.parent / "helpers" / "notify_daemon.py")
needs_systemd_notify = pytest.mark.skipif(
    shutil.which("systemd-notify") is None, reason="systemd-notify is not installed (Debian package systemd)"
)


class Script:
    """Tells a notify_daemon.py what to do next through its directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(exist_ok=True)
        self.n = 0

    def send(self, data: str) -> None:
        self._drop("send", data)

    def say(self, line: str) -> None:
        self._drop("print", line)

    def _drop(self, kind: str, data: str) -> None:
        self.n += 1
        tmp = self.dir / f".{kind}-{self.n:04d}"
        tmp.write_text(data)
        tmp.rename(self.dir / f"{kind}-{self.n:04d}")

    def sent(self) -> bool:
        return not any(p.name.startswith(("send-", "print-")) for p in self.dir.iterdir())

    def pids(self) -> set[int]:
        return {int(p.name[4:]) for p in self.dir.iterdir() if p.name.startswith("pid-")}


def environ_after_exec(pid: int) -> list[bytes]:
    """The daemon's environment once it runs its program (before its exec, /proc shows the
    supervisor's copy in the forked child)."""
    wait_for(lambda: DAEMON in proc.cmdline(pid), 5, "the daemon's exec")
    # Read right at the exec, the file can still be empty (seen once in a full run): read again.
    raw = wait_for(lambda: Path(f"/proc/{pid}/environ").read_bytes(), 5, "the daemon's environment")
    return raw.split(b"\0")


def start(sandbox: Sandbox, decls: dict[str, Any]) -> None:
    sandbox.join(sandbox.owner(), parse_declarations(decls))


def field(sandbox: Sandbox, name: str, key: str) -> Any:
    return sandbox.daemon(name)[key]


def test_notify_daemon_is_ready_only_on_ready_and_reports_status_reload_stop(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    script = Script(tmp_path / "app")
    start(sandbox, {"app": {"command": [sys.executable, DAEMON, str(script.dir)], "ready": {"notify": True}}})
    pid = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(pid)
    script.send("STATUS=loading the model")
    wait_for(lambda: field(sandbox, "app", "notify") == {"status": "loading the model", "phase": None}, 5)
    assert field(sandbox, "app", "ready") is False
    script.send("READY=1\nSTATUS=serving")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready after READY=1")
    assert field(sandbox, "app", "notify") == {"status": "serving", "phase": None}
    assert "\n  app: says serving\n" in format_table(sandbox.status())
    script.send("RELOADING=1\nSTATUS=reloading")
    wait_for(lambda: field(sandbox, "app", "notify")["phase"] == "reloading", 5, "reloading")
    assert field(sandbox, "app", "ready") is False
    script.send("READY=1")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready again")
    script.send("STOPPING=1")
    wait_for(lambda: field(sandbox, "app", "notify")["phase"] == "stopping", 5, "stopping")
    assert sandbox.running("app") == pid  # reflected only: the daemon decides when it exits
    assert "daemon 'app' is reloading (RELOADING=1)" in sandbox.log_text()


def test_notify_socket_is_the_daemons_own_in_the_runtime_dir(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "app")
    start(sandbox, {"app": {"command": [sys.executable, DAEMON, str(script.dir)], "ready": {"notify": True}}})
    pid = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(pid)
    environ = dict(e.decode().split("=", 1) for e in environ_after_exec(pid) if b"=" in e)
    path = Path(sandbox.runtime_dir) / "notify" / "app.sock"
    assert environ["NOTIFY_SOCKET"] == str(path)
    assert "WATCHDOG_USEC" not in environ  # no watchdog declared
    assert path.is_socket() and (path.parent.stat().st_mode & 0o777) == 0o700


def test_notify_from_outside_the_daemons_tree_is_ignored(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "app")
    start(sandbox, {"app": {"command": [sys.executable, DAEMON, str(script.dir)], "ready": {"notify": True}}})
    pid = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(pid)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # this test's pid: not the daemon
        sock.sendto(b"READY=1\nSTATUS=forged", str(Path(sandbox.runtime_dir) / "notify" / "app.sock"))
    wait_for(lambda: "not a process of the daemon, ignored" in sandbox.log_text(), 5, "refusal logged")
    assert field(sandbox, "app", "ready") is False
    assert field(sandbox, "app", "notify") == {"status": None, "phase": None}
    script.send("READY=1")  # the daemon itself still can
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready")


@needs_systemd_notify
def test_systemd_notify_from_a_shell_daemon_makes_it_ready(sandbox: Sandbox, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    script = (
        f"while [ ! -e {gate} ]; do sleep 0.02; done; "
        "systemd-notify --status='warming up'; systemd-notify --ready --status='accepting'; exec sleep 60"
    )
    start(sandbox, {"sh": {"command": ["/bin/sh", "-c", script], "ready": {"notify": True}}})
    pid = wait_for(lambda: sandbox.running("sh"), 5, "sh running")
    sandbox.extra_pids.add(pid)
    assert field(sandbox, "sh", "ready") is False
    gate.touch()
    wait_for(lambda: field(sandbox, "sh", "ready") is True, 10, "ready from systemd-notify")
    assert field(sandbox, "sh", "notify") == {"status": "accepting", "phase": None}


def test_watchdog_restarts_a_daemon_that_stops_pinging(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "app")
    decl = {
        "command": [sys.executable, DAEMON, str(script.dir), "--pings", "5", "--every", "0.2"],
        "ready": {"notify": True},
        "watchdog_timeout": 1.0,
    }
    start(sandbox, {"app": decl})
    first = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(first)
    assert b"WATCHDOG_USEC=1000000" in environ_after_exec(first)
    script.send("READY=1")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready")
    assert field(sandbox, "app", "restart_cause") is None
    second = wait_for(lambda: (p := sandbox.running("app")) and p != first and p, 10, "restarted")
    sandbox.extra_pids.add(second)
    cause = field(sandbox, "app", "restart_cause")
    assert cause["limit"] == "watchdog" and cause["detail"] == "watchdog: no WATCHDOG=1 for 1s"
    assert f"daemon 'app' (pid {first}) watchdog: no WATCHDOG=1 for 1s; restarting it" in sandbox.log_text()
    wait_for(lambda: not alive(first), 5, "the hung run ended")


def test_watchdog_keeps_a_daemon_that_pings(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "app")
    decl = {
        "command": [sys.executable, DAEMON, str(script.dir), "--pings", "1000", "--every", "0.1"],
        "ready": {"notify": True},
        "watchdog_timeout": 0.6,
    }
    start(sandbox, {"app": decl})
    pid = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(pid)
    script.send("READY=1")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready")
    mark = len(sandbox.log_text())
    assert_stays(  # three watchdog periods: the pings keep it
        lambda: sandbox.running("app") == pid and "watchdog" not in sandbox.log_text()[mark:],
        1.8,
        "app running unrestarted",
        show=lambda: sandbox.log_text()[mark:],
    )


@pytest.mark.parametrize("log", ["prefix", "file"])
def test_log_line_matching_the_regex_makes_it_ready(sandbox: Sandbox, tmp_path: Path, log: str) -> None:
    script = Script(tmp_path / "worker")
    decl: dict[str, Any] = {
        "command": [sys.executable, DAEMON, str(script.dir), "--print", "booting"],
        # celery's own line (celery/apps/worker.py logs "%s ready." with the hostname)
        "ready": {"log": r"celery@\S+ ready\."},
    }
    if log == "file":
        decl["log"] = str(tmp_path / "worker.log")
    start(sandbox, {"worker": decl})
    pid = wait_for(lambda: sandbox.running("worker"), 5, "worker running")
    sandbox.extra_pids.add(pid)

    def lines() -> list[str]:
        return list(sandbox.call("logs", name="worker", lines=20)["lines"])

    wait_for(lambda: "booting" in lines(), 5, "the first line")
    script.say("celery@host is not ready. yet")  # no match: "ready\." needs the dot right after
    wait_for(lambda: script.sent() and "celery@host is not ready. yet" in lines(), 5, "second line")
    assert field(sandbox, "worker", "ready") is False
    script.say("celery@host ready.")
    wait_for(lambda: field(sandbox, "worker", "ready") is True, 5, "ready on the matching line")


def test_a_log_probe_never_ready_says_so_after_ready_timeout(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "w")
    decl = {
        "command": [sys.executable, DAEMON, str(script.dir), "--print", "nothing to see"],
        "ready": {"log": "database system is ready"},
        "ready_timeout": 0.5,
    }
    start(sandbox, {"w": decl})
    sandbox.extra_pids.add(wait_for(lambda: sandbox.running("w"), 5, "running"))
    error = "not ready after 0.5s (log line matching 'database system is ready')"
    wait_for(lambda: field(sandbox, "w", "error") == error, 5, "the timeout said in status")
    assert field(sandbox, "w", "ready") is False


def test_sigkilled_notify_daemon_restarts_and_must_say_ready_again(sandbox: Sandbox, tmp_path: Path) -> None:
    script = Script(tmp_path / "app")
    start(sandbox, {"app": {"command": [sys.executable, DAEMON, str(script.dir)], "ready": {"notify": True}}})
    first = wait_for(lambda: sandbox.running("app"), 5, "app running")
    sandbox.extra_pids.add(first)
    script.send("READY=1\nSTATUS=one")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready")
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (p := sandbox.running("app")) and p != first and p, 5, "restarted")
    sandbox.extra_pids.add(second)
    assert field(sandbox, "app", "ready") is False
    assert field(sandbox, "app", "notify") == {"status": None, "phase": None}
    script.send("READY=1")
    wait_for(lambda: field(sandbox, "app", "ready") is True, 5, "ready again")
