"""Fixtures for the leader tests: real engines (skipped with a reason when absent), contenders.

PostgreSQL: a scratch database ``attachdaemon_test_<pid>`` (dropped afterwards; advisory locks
and the ``attachdaemon`` schema live in it). Redis: the shared server with lock names unique
per test (their keys are deleted afterwards), and a PRIVATE redis-server for the restart test.
Failover figures are collected in FIGURES, printed at the end and written to
``$ATTACHDAEMON_LEADER_FIGURES`` (default: /tmp/attachdaemon-leader-figures.json).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import free_port, redis_ping

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PG_ADMIN = os.environ.get("ATTACHDAEMON_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
REDIS_URL = os.environ.get("ATTACHDAEMON_TEST_REDIS", "redis://127.0.0.1:6379/0")
FIGURES: dict[str, Any] = {}
RUN_ID = uuid.uuid4().hex[:8]

# Short leases for tests; lease >= 3*renew + stop_timeout + 2 holds (4 >= 1.5 + 0.5 + 2).
LEASE, RENEW, STOP, MARGIN = 4.0, 0.5, 0.5, 0.5


def record(name: str, value: Any) -> None:
    FIGURES[name] = value
    print(f"\n[leader figure] {name}: {value}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    path = os.environ.get("ATTACHDAEMON_LEADER_FIGURES", "/tmp/attachdaemon-leader-figures.json")
    with open(path, "w") as f:
        json.dump(FIGURES, f, indent=1, sort_keys=True)
    terminalreporter.write_sep("-", f"leader failover figures (also in {path})")
    for key in sorted(FIGURES):
        terminalreporter.write_line(f"{key}: {FIGURES[key]}")


def unique_name(tag: str) -> str:
    return f"test-{RUN_ID}-{tag}-{uuid.uuid4().hex[:8]}"


# --- engines ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN!r}: {exc}")
    db = f"attachdaemon_test_{os.getpid()}"
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
        admin.execute(f"CREATE DATABASE {db}")
    base = dict(part.split("=", 1) for part in PG_ADMIN.split())
    base["dbname"] = db
    yield " ".join(f"{k}={v}" for k, v in base.items())
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis", reason="redis-py is not installed")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield REDIS_URL
    keys = list(client.scan_iter(match=f"attachdaemon:leader:test-{RUN_ID}-*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence (restart = state loss)."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 5
        while not redis_ping(self.port):
            assert time.monotonic() < end, "private redis-server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


# --- contenders ------------------------------------------------------------------------------


class Contender:
    """One host of the fleet: a fake supervisor (tests/leader/fake_supervisor.py) + holder."""

    def __init__(self, fleet: Fleet, label: str):
        self.fleet = fleet
        self.label = label
        cfg = {
            "label": label,
            "name": fleet.name,
            "backend": fleet.backend,
            "lease": fleet.lease,
            "renew": fleet.renew,
            "stop_timeout": fleet.stop,
            "margin": fleet.margin,
            "events": str(fleet.events),
            "beats": str(fleet.beats),
            "daemon": str(HERE / "beat_daemon.py"),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_supervisor.py"), json.dumps(cfg)],
            env=fleet.env,
            cwd=str(ROOT),
        )

    def events(self) -> list[dict[str, Any]]:
        return [e for e in self.fleet.all_events() if e.get("who") == self.label]

    def find(self, key: str, value: Any = None) -> list[dict[str, Any]]:
        return [e for e in self.events() if key in e and (value is None or e[key] == value)]

    @property
    def holder_pid(self) -> int:
        found = self.fleet.wait_for(lambda: self.find("holder_pid"), 5, "holder pid")
        return int(found[0]["holder_pid"])

    def watchdog_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.holder_pid)], check=False, capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def acquired(self) -> list[dict[str, Any]]:
        return self.find("event", "acquired")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Fleet:
    def __init__(self, tmp: Path, backend: str, name: str, env: dict[str, str]):
        self.backend = backend
        self.name = name
        self.events = tmp / "events.jsonl"
        self.beats = tmp / "beats.log"
        self.env = env
        self.lease, self.renew, self.stop, self.margin = LEASE, RENEW, STOP, MARGIN
        self.members: list[Contender] = []
        self.stopped_pids: list[int] = []

    def add(self, label: str) -> Contender:
        c = Contender(self, label)
        self.members.append(c)
        return c

    def all_events(self) -> list[dict[str, Any]]:
        try:
            text = self.events.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def acquired(self) -> list[dict[str, Any]]:
        return [e for e in self.all_events() if e.get("event") == "acquired"]

    def wait_for(self, pred: Any, timeout: float, what: str) -> Any:
        end = time.monotonic() + timeout
        while True:
            got = pred()
            if got:
                return got
            if time.monotonic() >= end:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; events:\n"
                    + "\n".join(json.dumps(e) for e in self.all_events()[-40:])
                )
            time.sleep(0.02)

    def leader(self, timeout: float = 10.0) -> Contender:
        def find() -> Contender | None:
            for c in self.members:
                if c.acquired() and c.find("spawned"):
                    return c
            return None

        found: Contender = self.wait_for(find, timeout, "a leader")
        return found

    def intervals(self) -> dict[str, tuple[float, float]]:
        spans: dict[str, list[float]] = {}
        try:
            text = self.beats.read_text()
        except FileNotFoundError:
            return {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            t = float(parts[2])
            span = spans.setdefault(parts[0], [t, t])
            span[0], span[1] = min(span[0], t), max(span[1], t)
        return {k: (v[0], v[1]) for k, v in spans.items()}

    def assert_no_overlap(self) -> list[tuple[str, float, float]]:
        spans = sorted((a, b, k) for k, (a, b) in self.intervals().items())
        for (a1, b1, k1), (a2, _b2, k2) in itertools.pairwise(spans):
            assert a2 > b1, f"daemons overlap: {k1} ran {a1:.3f}-{b1:.3f}, {k2} started {a2:.3f}"
        return [(k, a, b) for a, b, k in spans]

    def daemon_alive(self, label_prefix: str, within: float = 0.1) -> bool:
        now = time.monotonic()
        return any(k.startswith(label_prefix) and now - b < within for k, (a, b) in self.intervals().items())

    def close(self) -> None:
        for pid in self.stopped_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for c in self.members:
            c.stop()


@pytest.fixture
def lock_env(tmp_path: Path) -> dict[str, str]:
    """The environment of contenders: a private XDG_RUNTIME_DIR, so file locks stay in tmp."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    xdg.chmod(0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(xdg), PYTHONPATH=str(ROOT))
    env.pop("ATTACHDAEMON_INTERNAL_LEADER_BACKEND", None)
    return env


def make_fleet(tmp_path: Path, backend: str, env: dict[str, str], tag: str) -> Fleet:
    return Fleet(tmp_path, backend, unique_name(tag), env)
