"""The samples under real gunicorn, as ``scripts/demo.sh`` runs them, each test in its own corner.

Every run gets free loopback ports (web and daemons, through the samples' env variables), its own
runtime directory and its own data directory under /tmp. At teardown everything the run started
is ended by pid — gunicorn's process group, the smart daemons from their pidfiles, the
supervisor and its guard — and the teardown asserts nothing of it is left.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.osproc import proc
from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import REPO, VENV_BIN, Server, free_port

SAMPLES = REPO / "sample_projects"
SAMPLE_DIRS = {"django": SAMPLES / "django_site", "flask": SAMPLES / "flask_app"}
OPTIONAL = ("redis", "memcached", "postgres")
# What each optional daemon needs on PATH (sample_daemons.declarations decides the same way).
PROGRAMS = {"redis": ("redis-server",), "memcached": ("memcached",), "postgres": ("postgres", "initdb")}
HIDDEN = frozenset(p for names in PROGRAMS.values() for p in names)
BOOT_TIMEOUT = 90.0  # PostgreSQL's first start runs initdb


def hiding_path(where: Path) -> str:
    """A PATH with everything of ours except redis-server, memcached, postgres and initdb."""
    where.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = where / name
            if name in HIDDEN or link.exists() or link.is_symlink():
                continue
            with contextlib.suppress(OSError):
                link.symlink_to(os.path.join(directory, name))
    return str(where)


class SampleRun:
    """One sample under gunicorn: its environment, its server, and what it left running."""

    def __init__(self, sample: str, tmp: Path, hide_programs: bool = False) -> None:
        self.sample = sample
        self.dir = SAMPLE_DIRS[sample]
        self.tmp = tmp
        self.run_dir = tempfile.mkdtemp(prefix="ads-", dir="/tmp")
        os.chmod(self.run_dir, 0o755)  # as root, the postgres user goes through it
        self.runtime_dir = tempfile.mkdtemp(prefix="adr-", dir="/tmp")
        os.chmod(self.runtime_dir, 0o700)
        self.port = free_port()
        self.ports = {name: free_port() for name in ("kv", "redis", "memcached", "pg")}
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("ATTACH_DAEMONS", "ATTACHDAEMON", "DJANGO_", "FLASK_", "GUNICORN_", "SAMPLE_")
            )
        }
        env.update(
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            PORT=str(self.port),
            ATTACH_DAEMONS_RUNTIME_DIR=self.runtime_dir,
            SAMPLE_RUN_DIR=self.run_dir,
            SAMPLE_KV_PORT=str(self.ports["kv"]),
            SAMPLE_REDIS_PORT=str(self.ports["redis"]),
            SAMPLE_MEMCACHED_PORT=str(self.ports["memcached"]),
            SAMPLE_PG_PORT=str(self.ports["pg"]),
        )
        if hide_programs:
            env["PATH"] = hiding_path(tmp / "path-without-daemons")
        self.env = env
        self.servers: list[Server] = []
        self.seen: set[int] = set()  # every daemon pid the status ever showed

    # -- what the sample declares in this environment
    def installed(self, name: str) -> bool:
        path = self.env.get("PATH")
        return all(shutil.which(p, path=path) for p in PROGRAMS[name])

    def expected(self) -> set[str]:
        return {"kv"} | {n for n in OPTIONAL if self.installed(n)}

    # -- the server
    def start(self, argv: list[str] | None = None, **env: str) -> Server:
        argv = argv or [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
        out = self.tmp / f"server-{len(self.servers)}.out"
        server = Server(argv, self.dir, {**self.env, **env}, out)
        self.servers.append(server)
        return server

    def wait_up(self, server: Server, timeout: float = BOOT_TIMEOUT) -> None:
        def up() -> bool:
            if server.proc.poll() is not None:
                raise AssertionError(f"the server exited with {server.proc.returncode}")
            return self.get("/")[0] == 200

        try:
            wait_for(up, timeout, f"the {self.sample} sample answering on port {self.port}", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server output:\n{server.output()}") from None

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/daemons/status.json")
        assert code == 200, (code, body)
        data: dict[str, Any] = json.loads(body)
        for d in data["daemons"]:
            if d["pid"]:
                self.seen.add(d["pid"])
        return data

    def daemons(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.status()["daemons"]}

    def all_running(self) -> dict[str, dict[str, Any]] | None:
        ds = self.daemons()
        if set(ds) == self.expected() and all(d["state"] == "running" and d["ready"] for d in ds.values()):
            return ds
        return None

    def supervisor_log(self) -> str:
        try:
            with open(os.path.join(self.runtime_dir, "supervisor.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return "(none)"

    def interrupt(self, server: Server, timeout: float = 30) -> int:
        """Ctrl-C: SIGINT to gunicorn's process group, as a terminal does."""
        server.signal_group(signal.SIGINT)
        try:
            return server.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"gunicorn still running {timeout}s after Ctrl-C; its output:\n{server.output()}\n"
                f"supervisor log:\n{self.supervisor_log()}"
            ) from None

    # -- processes
    def supervisor_processes(self) -> list[int]:
        return [p for p in _pids() if self.runtime_dir in proc.cmdline(p)]

    def smart_pids(self) -> dict[str, int]:
        files = {
            "redis": Path(self.run_dir, "redis", "redis.pid"),
            "postgres": Path(self.run_dir, "pg", "data", "postmaster.pid"),
        }
        programs = {"redis": "redis-server", "postgres": "postgres"}
        found = {}
        for name, path in files.items():
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(path.read_text().split()[0])
                if alive(pid) and _runs(pid, programs[name]):
                    found[name] = pid
        return found

    def ours(self) -> list[int]:
        """Every live process this run started: by runtime/data dir, or by its daemon ports."""
        marks = [self.runtime_dir, self.run_dir]
        found = []
        for pid in _pids():
            cmd = " ".join(proc.cmdline(pid))
            if (
                any(m in cmd for m in marks)
                or ("kvstore.py" in cmd and f"--port {self.ports['kv']}" in cmd)
                or ("memcached" in cmd and f"-p {self.ports['memcached']}" in cmd)
                or ("redis-server" in cmd and f":{self.ports['redis']}" in cmd)
            ) and alive(pid):
                found.append(pid)
        found += [p for p in self.seen | set(self.smart_pids().values()) if alive(p) and p not in found]
        return found

    def cleanup(self) -> list[str]:
        problems = []
        for server in self.servers:
            server.kill()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self.supervisor_processes(), 15, "the supervisor to exit")
        if self.supervisor_processes():
            problems.append(f"supervisor still running: {self.supervisor_processes()}")
        for name, pid in self.smart_pids().items():  # their job is to outlive the server: end them
            os.kill(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                wait_for(lambda p=pid: not alive(p), 15, f"{name} to stop")
        left = self.ours()
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(alive(p) for p in left), 10, "the leftovers to die")
        if left:
            problems.append(f"processes left running after the test: {left}")
        still = [p for p in left if alive(p)]
        if still:
            problems.append(f"and even SIGKILL left {still}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return problems


def _runs(pid: int, program: str) -> bool:
    """By its executable, or its title (Debian's redis-server is a link to redis-check-rdb)."""
    argv0 = (proc.cmdline(pid) or [""])[0].split(" ")[0]
    return program in (os.path.basename(proc.exe(pid) or ""), os.path.basename(argv0))


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid()]


def visits(page: str, daemon: str) -> int | None:
    """The count the home page shows for ``daemon``, or None when it shows none."""
    row = re.search(rf'<tr data-name="{daemon}">(.*?)</tr>', page, re.DOTALL)
    assert row, f"no counter row for {daemon}"
    found = re.search(r'<td class="num visits">(\d+)</td>', row.group(1))
    return int(found.group(1)) if found else None


@pytest.fixture
def sample_run(tmp_path: Path) -> Iterator[Callable[..., SampleRun]]:
    made: list[SampleRun] = []

    def make(sample: str, *, hide_programs: bool = False) -> SampleRun:
        run = SampleRun(sample, tmp_path, hide_programs)
        made.append(run)
        return run

    yield make
    problems = [p for run in made for p in run.cleanup()]
    assert not problems, problems


def repo_venv_python() -> str | None:
    """The repository's .venv python, when the tests run in it with attachdaemon installed there."""
    venv = REPO / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        return None
    return str(venv / "bin" / "python")
