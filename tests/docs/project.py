"""A newcomer's project directory, the commands run in it, and the end of everything they started.

The environment is a newcomer's: the repository's virtualenv activated (its ``bin`` first on
PATH), none of the variables the other tests use to steer attachdaemon (no runtime directory
override: each project gets the runtime directory attachdaemon picks for it). Servers run in
their own session; Ctrl-C is SIGINT to their process group, as a terminal sends it.

Every status JSON the tests read is noted (:meth:`Project.note_status`), so the cleanup knows the
supervisor, its guard and every daemon pid ever shown, with their start times: at the end it kills
the servers' groups, waits for the supervisors to leave (they must, their owners being gone),
ends the smart daemons (which outlive their server by design) and anything still alive that a
status showed, by pid, and removes the runtime directories. It reports what it had to kill that
should have ended by itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attachdaemon_core.osproc import proc
from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import REPO, Server

VENV_BIN = Path(sys.executable).parent
STEERING = ("ATTACH_DAEMONS", "ATTACHDAEMON_CONFIG", "DJANGO_", "FLASK_", "WERKZEUG_", "GUNICORN_")
# The programs the README's examples need that a machine may lack (CI installs them: .ci/run).
OPTIONAL_PROGRAMS = ("redis-server", "memcached")


def newcomer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["PYTHONPATH"] = str(REPO)  # attachdaemon as checked out (CI installs it there too)
    return env


def missing_programs(names: Sequence[str]) -> list[str]:
    return [n for n in names if n in OPTIONAL_PROGRAMS and shutil.which(n) is None]


class Project:
    """One directory tree of a newcomer's projects, and what was started there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.env = newcomer_env()
        self.servers: list[Server] = []
        self.shown: dict[int, tuple[int, str]] = {}  # pid -> (start time, what) from any status
        self.runtime_dirs: set[str] = set()
        self.pidfiles: list[Path] = []

    # -- commands
    def run(
        self, argv: Sequence[str], cwd: Path, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def shell(self, line: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One shell line; stdout and stderr together, as a terminal shows them."""
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return result

    def start(self, argv: Sequence[str], cwd: Path, name: str) -> Server:
        out = self.root / f"{name}-{len(self.servers)}.out"
        server = Server(list(argv), cwd, self.env, out)
        self.servers.append(server)
        return server

    def interrupt(self, server: Server, timeout: float = 30) -> int:
        """Ctrl-C: SIGINT to the server's process group; its exit status."""
        with contextlib.suppress(ProcessLookupError):
            server.signal_group(signal.SIGINT)
        try:
            return server.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{' '.join(server.argv)} still running {timeout}s after Ctrl-C:\n{server.output()}"
            ) from None

    # -- status
    def status_json(self, argv: Sequence[str], cwd: Path) -> tuple[int, dict[str, Any]]:
        """Run a ``status --json`` command; note what it shows; (exit status, the JSON)."""
        result = self.run(argv, cwd, timeout=30)
        try:
            data: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"not JSON from {' '.join(argv)}: {result.stdout!r} {result.stderr!r}"
            ) from None
        self.note_status(data)
        return result.returncode, data

    def note_status(self, data: dict[str, Any]) -> None:
        sup = data.get("supervisor")
        if not sup:
            return
        self.runtime_dirs.add(sup["runtime_dir"])
        self._note(sup["pid"], "supervisor")
        st = proc.stat(sup["pid"])
        if st is not None:
            self._note(st.ppid, "guard")
        for d in data.get("daemons", []):
            if d.get("pid"):
                self._note(d["pid"], f"daemon {d['name']} ({d['kind']})")

    def _note(self, pid: int, what: str) -> None:
        st = proc.stat(pid)
        if st is not None and pid not in self.shown and pid not in (1, os.getpid()):
            self.shown[pid] = (st.starttime, what)

    def living(self, pid: int) -> bool:
        """Is ``pid`` still the process a status showed (not a reused pid)?"""
        st = proc.stat(pid)
        noted = self.shown.get(pid)
        return st is not None and st.state not in ("Z", "X") and (noted is None or noted[0] == st.starttime)

    def supervisors_left(self) -> list[int]:
        return [p for p, (_, what) in self.shown.items() if what == "supervisor" and self.living(p)]

    # -- the end
    def stop_smart(self, pid: int, what: str) -> None:
        """End a smart daemon the test saw running (it outlives its server by design)."""
        if self.living(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not self.living(pid), 20, f"{what} (pid {pid}) to stop on SIGTERM")

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for server in self.servers:  # a test that passed has stopped them (Ctrl-C) itself
            server.kill()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self.supervisors_left(), 15, "the supervisors to exit")
        for path in self.pidfiles:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(path.read_text().split()[0])
                self._note(pid, f"pid from {path}")
        for pid, (_, what) in sorted(self.shown.items()):
            if not self.living(pid):
                continue
            if what.startswith("supervisor"):
                problems.append(f"supervisor {pid} did not exit once its owners were gone")
            elif "(attached)" in what:
                problems.append(f"{what} (pid {pid}) outlived its server")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM if "smart" in what or "pid from" in what else signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(self.living(p) for p in self.shown), 15, "everything to end")
        for pid in [p for p in self.shown if self.living(p)]:
            fd = proc.pidfd_open(pid)
            if fd is not None:
                proc.pidfd_signal(fd, signal.SIGKILL)
                os.close(fd)
            problems.append(f"{self.shown[pid][1]} (pid {pid}) needed SIGKILL")
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(self.living(p) for p in self.shown), 5, "SIGKILLed processes to end")
        for d in self.runtime_dirs:
            shutil.rmtree(d, ignore_errors=True)
        return problems


def all_running_and_ready(data: dict[str, Any], names: set[str]) -> bool:
    daemons = {d["name"]: d for d in data.get("daemons", [])}
    return set(daemons) == names and all(
        d["state"] == "running" and d["ready"] is True and d["pid"] for d in daemons.values()
    )


def alive_any(pids: Sequence[int]) -> list[int]:
    return [p for p in pids if alive(p)]
