"""Real servers for the host tests: gunicorn, runserver, flask run, each in its own session.

A :class:`Host` copies a fixture project into the test's directory (so edits and runtime-dir keys
are the test's own), starts server commands there with the probe daemons' environment, and at
teardown kills every process group it started and asserts none is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from attachdaemon_core.control import client
from attachdaemon_core.osproc import proc
from tests.helpers.harness import PROBE, Sandbox, alive, supervisor_pids, wait_for

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server command in its own session, its output in a file."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], out: Path) -> None:
        self.argv = argv
        self.out_path = out
        with open(out, "ab") as f:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.pid, sig)

    def wait_exit(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Host:
    """A copied fixture project, the servers started in it, and the probe daemons' sandbox."""

    def __init__(self, box: Sandbox, fixture: str, python: str = sys.executable) -> None:
        self.box = box
        self.dir = box.tmp / fixture
        shutil.copytree(FIXTURES / fixture, self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.python = python
        self.bin = Path(python).parent
        self.servers: list[Server] = []
        self.env = dict(os.environ)
        for name in list(self.env):
            if name.startswith(("ATTACH_DAEMONS", "DJANGO_", "FLASK_", "WERKZEUG_", "GUNICORN_")):
                del self.env[name]
        self.env.update(
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            AD_PROBE=PROBE,
            AD_EVENTS=str(box.events.path),
            AD_PIDDIR=str(box.tmp),
            ATTACH_DAEMONS_RUNTIME_DIR=box.runtime_dir,
        )
        self.pidfile = box.tmp / "s.pid"

    # -- servers
    def start(self, argv: list[str], name: str = "server", **env: str) -> Server:
        server = Server(argv, self.dir, {**self.env, **env}, self.box.tmp / f"{name}-{len(self.servers)}.out")
        self.servers.append(server)
        return server

    def run(self, argv: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=self.dir,
            env={**self.env, **env},
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def gunicorn(self, port: int, **env: str) -> Server:
        return self.start(
            [
                str(self.bin / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                "-b",
                f"127.0.0.1:{port}",
                "-p",
                str(self.box.tmp / "gunicorn.pid"),
                "--graceful-timeout",
                "5",
            ],
            "gunicorn",
            **env,
        )

    # -- what runs
    def supervisors(self) -> list[int]:
        """The supervisor processes of this test's runtime directory, from /proc."""
        return supervisor_pids(self.box.runtime_dir)

    def living(self, name: str) -> list[int]:
        return [p for p in self.box.events.starts(name) if alive(p)]

    def status(self) -> dict[str, Any]:
        return self.box.status()

    def http(self, port: int, path: str = "/") -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode(errors="replace")

    def smart_pid(self) -> int:
        return int(self.pidfile.read_text().split()[0])

    def cleanup(self) -> list[str]:
        problems = []
        for server in self.servers:
            server.kill()
            with contextlib.suppress(AssertionError):
                wait_for(lambda s=server: not _group_alive(s.pid), 5, "server group to end")
            if _group_alive(server.pid):
                problems.append(f"server group {server.pid} still alive")
        if self.pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                self.box.extra_pids.add(self.smart_pid())
        return problems


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc.stat(int(entry))
            if st is not None and st.pgid == pgid and st.state not in ("Z", "X"):
                return True
    return False


def no_supervisor(runtime_dir: str) -> bool:
    try:
        client.call(runtime_dir, "ping", timeout=0.5)
    except client.NoSupervisor:
        return True
    return False
