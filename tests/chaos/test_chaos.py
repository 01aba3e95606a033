"""Issue #5's chaos suite: the Django sample under real gunicorn, a steady HTTP load, and a seeded
random schedule of faults; after every fault and at the end, the invariants of docs/events.md
and docs/process-model.md.

What runs: gunicorn (2 sync workers) serving the sample, whose home page counts each visit through
every daemon it declares: ``kv`` (attached, always), ``memcached`` (attached), ``redis`` (smart,
here with ``appendonly yes`` / ``appendfsync always`` via ``chaos_settings``) and a dedicated
PostgreSQL (smart), the last three where installed. A thread requests the home page in a bounded
loop on 127.0.0.1.

The faults (:data:`WEIGHTS`): SIGKILL of kv, of redis-server, of the postmaster, of the
supervisor, of a gunicorn worker; SIGSTOP/SIGCONT of the supervisor; HUP of the master; USR2 then
TERM of the old master; SIGKILL of the master and a restart of the same gunicorn command. Once,
redis is stopped through the control socket, a foreign process's pid is written into its pidfile
and it is started again: the supervisor must refuse that pid and start redis.

After each fault the suite waits (deadline-based) for the site to settle — gunicorn's master with
exactly 2 workers and no other gunicorn process of ours, every daemon running and ready, the home
page answering 200 with a count from every daemon — then checks:

- orphans: no live process in the session of an attached daemon that is no longer the current one
  (sid == pid for attached daemons; a session whose leader's pid was reused is known empty);
- duplicates: at most one kvstore.py on our port, one memcached on our port, one redis-server on
  our port, one postmaster of our data directory, one supervisor of our runtime directory;
- wrong kills: the sentinel processes (``sleep``, in their own session, one of them named by redis'
  pidfile for a while) are alive;
- lost writes: every redis key and PostgreSQL row committed before any fault is still there;
- unexcused failures: every request that does not overlap a fault's window (from the fault to the
  settle point) succeeded, with a count from every daemon.

``CHAOS_FAULTS`` (default 200) and ``CHAOS_SEED`` (default :data:`DEFAULT_SEED`) make a longer soak
or another schedule. One summary line is printed at the end of pytest's output and written as JSON
to ``tests/chaos/last-run.json`` (git-ignored).

Faults that kill a daemon wait until it has been up for :data:`MIN_UPTIME` first: a daemon that dies
quickly in a row is restarted with a growing backoff by design (docs/declarations.md, backoff), which would
only spend the time budget; the invariants are the same either way.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.control import client
from attachdaemon_core.osproc import proc
from tests.helpers.harness import wait_for
from tests.helpers.hosts import VENV_BIN
from tests.samples.conftest import SampleRun, visits

HERE = Path(__file__).resolve().parent
LAST_RUN = HERE / "last-run.json"
LOOPBACK = "127.0.0.1"
SETTINGS = "tests.chaos.chaos_settings"

DEFAULT_SEED = 5005
FAULTS = int(os.environ.get("CHAOS_FAULTS") or 200)
SEED = int(os.environ.get("CHAOS_SEED") or DEFAULT_SEED)

# Cheap faults often, the master's kill+restart and USR2 a handful of times (200 faults ~ 2 min).
WEIGHTS: dict[str, int] = {
    "kill_kv": 24,
    "kill_redis": 14,
    "kill_postgres": 10,
    "kill_supervisor": 10,
    "stop_cont_supervisor": 14,
    "kill_worker": 16,
    "hup_master": 7,
    "usr2_then_term_old": 2,
    "kill_master_restart": 2,
}
NEEDS = {"kill_redis": "redis", "kill_postgres": "postgres"}

BOOT_TIMEOUT = 120.0  # the first start of PostgreSQL runs initdb
SETTLE_TIMEOUT = 60.0  # generous: other suites may share this 2-core machine
MIN_UPTIME = 1.2  # a daemon up this long restarts at once when killed (min_uptime is 1 s)
REQUEST_TIMEOUT = 10.0
# The supervisor: ``python -m attachdaemon_core supervise …``, or forked from its guard without an
# exec (same command line as the guard), named by its /proc/PID/comm.
SUPERVISOR_COMM = "ad-supervisor"
LOAD_PAUSE = 0.005


# ---------------------------------------------------------------------- processes, from /proc
@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    start: int
    comm: str
    cmd: tuple[str, ...]


def snapshot() -> dict[int, Proc]:
    """Every live (not zombie) process, with its session and command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc.stat(int(entry))
        if st is None or st.state in ("Z", "X"):
            continue
        found[st.pid] = Proc(st.pid, st.ppid, st.sid, st.starttime, st.comm, tuple(proc.cmdline(st.pid)))
    return found


def living(pid: int, start: int) -> bool:
    st = proc.stat(pid)
    return st is not None and st.starttime == start and st.state not in ("Z", "X")


def _after(cmd: tuple[str, ...], flag: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return cmd[cmd.index(flag) + 1]
    return None


def signal_verified(pid: int, sig: int, looks_right: Callable[[tuple[str, ...]], bool]) -> None:
    """Signal ``pid`` through a pidfd, after checking (with the pidfd held) it is the one we mean."""
    fd = proc.pidfd_open(pid)
    assert fd is not None, f"pid {pid} is gone"
    try:
        st = proc.stat(pid)
        cmd = (*proc.cmdline(pid), f"comm={st.comm if st else ''}")
        assert looks_right(cmd), f"pid {pid} is not what we meant to signal: {cmd}"
        assert proc.pidfd_signal(fd, sig), f"cannot signal {pid}"
    finally:
        os.close(fd)


def _named(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in status["daemons"]}


def status_pid(status: dict[str, Any], name: str) -> int:
    return int(_named(status)[name]["pid"])


# ---------------------------------------------------------------------- the load
@dataclass
class Request:
    start: float
    end: float
    ok: bool
    why: str


class Load(threading.Thread):
    """GET / in a loop (bounded by a deadline and a count) and remember how each went."""

    def __init__(self, port: int, daemons: set[str], deadline: float, max_requests: int) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.port = port
        self.daemons = daemons
        self.deadline = deadline
        self.max_requests = max_requests
        self.records: list[Request] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            if len(self.records) >= self.max_requests:
                break
            t0 = time.monotonic()
            why = self.one()
            self.records.append(Request(t0, time.monotonic(), why == "", why))
            self.halt.wait(LOAD_PAUSE)

    def one(self) -> str:
        """'' when the page answered 200 with a count from every daemon, else what went wrong."""
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            page = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            return f"{exc.__class__.__name__}: {exc}"
        finally:
            conn.close()
        if response.status != 200:
            return f"HTTP {response.status}"
        try:
            missing = sorted(d for d in self.daemons if visits(page, d) is None)
        except AssertionError as exc:
            return f"bad page: {exc}"
        return f"no count from {missing}" if missing else ""

    def stop(self) -> None:
        self.halt.set()
        self.join(REQUEST_TIMEOUT + 5)


# ---------------------------------------------------------------------- the run
@dataclass
class Step:
    kind: str
    start: float = 0.0
    end: float = 0.0
    detail: str = ""


@dataclass
class Findings:
    orphans: set[tuple[int, int]] = field(default_factory=set)  # (session, pid)
    duplicates: set[tuple[str, tuple[int, ...]]] = field(default_factory=set)
    wrong_kills: set[int] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)


class Chaos:
    def __init__(self, run: SampleRun, rng: random.Random, keep: Path) -> None:
        self.run = run
        self.keep = keep  # the test's tmp_path: the journal and a copy of the supervisor's log
        self.journal = keep / "journal.log"
        self.rng = rng
        self.runtime_dir = run.runtime_dir
        self.pidfile = Path(run.run_dir, "gunicorn.pid")
        self.argv = [
            str(VENV_BIN / "gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "-e",
            f"DJANGO_SETTINGS_MODULE={SETTINGS}",
            "-p",
            str(self.pidfile),
            "--graceful-timeout",
            "5",
        ]
        self.expected = run.expected()
        self.redis_pidfile = Path(run.run_dir, "redis", "redis.pid")
        self.pg_data = str(Path(run.run_dir, "pg", "data"))
        self.attached_seen: dict[int, int] = {}  # session (= the daemon's pid) -> its start time
        self.smart_seen: dict[int, int] = {}
        self.current: dict[str, dict[str, Any]] = {}
        self.sentinels: dict[int, int] = {}  # pid -> start time
        self.sentinel_procs: list[subprocess.Popen[bytes]] = []
        self.masters: dict[int, subprocess.Popen[bytes] | None] = {}
        self.steps: list[Step] = []
        self.found = Findings()
        self.keys: dict[str, str] = {}
        self.rows: dict[int, str] = {}
        self.load: Load | None = None
        self.done: Callable[[dict[str, Any], list[int]], str | None] | None = None
        self.prefix = f"chaos:{SEED}:{os.getpid()}:"
        self.refusals: list[str] = []  # the supervisor's log lines refusing the sentinel's pid

    # -- gunicorn
    def start_server(self) -> None:
        server = self.run.start(self.argv, DJANGO_SETTINGS_MODULE=SETTINGS)
        self.masters[server.pid] = server.proc

    def is_ours(self, p: Proc) -> bool:
        """A gunicorn master or worker of this run (workers are forks: same command line)."""
        return str(self.pidfile) in p.cmd and any("gunicorn" in a for a in p.cmd[:2])

    def master_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        st = proc.stat(pid)
        if st is None or st.state in ("Z", "X") or str(self.pidfile) not in proc.cmdline(pid):
            return None
        return pid

    def workers(self, master: int, snap: dict[int, Proc]) -> list[int]:
        return sorted(p.pid for p in snap.values() if p.ppid == master and self.is_ours(p))

    def reap(self, pid: int) -> None:
        popen = self.masters.get(pid)
        if popen is not None:
            popen.wait(30)

    # -- the supervisor
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = client.call(self.runtime_dir, "status", timeout=3)
        return result

    def daemon(self, name: str) -> dict[str, Any]:
        return next(d for d in self.status()["daemons"] if d["name"] == name)

    # -- settling
    def healthy(self) -> dict[str, Any] | str:
        """The status when the site has settled, else a string saying what is not there yet."""
        master = self.master_pid()
        if master is None:
            return "no live master in the pidfile"
        snap = snapshot()
        workers = self.workers(master, snap)
        others = sorted(p.pid for p in snap.values() if self.is_ours(p) and p.pid != master)
        if len(workers) != 2 or others != workers:
            return f"master {master}: workers {workers}, other gunicorn processes {others}"
        status = self.status()
        if status["supervisor"]["owners"] != [master]:
            return f"owners {status['supervisor']['owners']}, master {master}"
        daemons = {d["name"]: d for d in status["daemons"]}
        if set(daemons) != self.expected:
            return f"declared {sorted(daemons)}"
        waiting = {n: d["state"] for n, d in daemons.items() if d["state"] != "running" or not d["ready"]}
        if waiting:
            return f"not running and ready: {waiting}"
        code, page = self.run.get("/")
        if code != 200:
            return f"home page {code}"
        missing = sorted(n for n in self.expected if visits(page, n) is None)
        if missing:
            return f"no count from {missing}"
        pending = self.done(status, workers) if self.done is not None else None
        return f"the fault's effect: {pending}" if pending else status

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> dict[str, Any]:
        last: list[Any] = [None]

        def ready() -> dict[str, Any] | None:
            got = self.healthy()
            last[0] = got
            return got if isinstance(got, dict) else None

        try:
            status = wait_for(ready, timeout, "the site to settle", interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast: {last[0]!r}\n{self.diagnostics()}") from None
        for d in status["daemons"]:
            st = proc.stat(d["pid"])
            if st is None:
                continue
            self.run.seen.add(d["pid"])
            if d["kind"] == "attached":
                self.attached_seen.setdefault(d["pid"], st.starttime)
            else:
                self.smart_seen.setdefault(d["pid"], st.starttime)
        self.current = {d["name"]: d for d in status["daemons"]}
        self.done = None
        return status

    def diagnostics(self) -> str:
        log = Path(self.runtime_dir, "supervisor.log")
        tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
        servers = "\n".join(s.output()[-3000:] for s in self.run.servers[-2:])
        return "--- supervisor.log (tail):\n" + "\n".join(tail) + "\n--- gunicorn (tail):\n" + servers

    # -- what must never be lost
    def write(self, i: int) -> None:
        value = f"{i}:{self.rng.getrandbits(32)}"
        if "redis" in self.expected:
            key = f"{self.prefix}{i}"
            wait_for(lambda: self._redis_set(key, value), 15, f"redis SET {key}", interval=0.05)
            self.keys[key] = value
        if "postgres" in self.expected:
            wait_for(lambda: self._pg_insert(i, value), 15, f"INSERT row {i}", interval=0.05)
            self.rows[i] = value

    def _redis(self) -> Any:
        import redis

        return redis.Redis(
            host=LOOPBACK, port=self.run.ports["redis"], socket_timeout=5, socket_connect_timeout=5
        )

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=LOOPBACK,
            port=self.run.ports["pg"],
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _redis_set(self, key: str, value: str) -> bool:
        with self._redis() as r:
            return bool(r.set(key, value))

    def _pg_insert(self, i: int, value: str) -> bool:
        with self._pg() as conn:
            conn.execute("INSERT INTO chaos_rows (i, v) VALUES (%s, %s)", (i, value))
        return True

    def prepare_writes(self) -> None:
        if "postgres" in self.expected:
            with self._pg() as conn:
                conn.execute("CREATE TABLE chaos_rows (i integer PRIMARY KEY, v text NOT NULL)")

    def check_writes(self, label: str) -> None:
        if self.keys:
            with self._redis() as r:
                names = list(self.keys)
                values = r.mget(names)
            for k, v in zip(names, values, strict=True):
                if v is None or v.decode() != self.keys[k]:
                    if k not in self.found.lost:
                        self.found.note(f"{label}: redis key {k} is {v!r}, was set to {self.keys[k]!r}")
                    self.found.lost.add(k)
        if self.rows:
            with self._pg() as conn:
                rows = dict(conn.execute("SELECT i, v FROM chaos_rows").fetchall())
            for i, v in self.rows.items():
                if rows.get(i) != v:
                    if f"pg:{i}" not in self.found.lost:
                        self.found.note(f"{label}: PostgreSQL row {i} is {rows.get(i)!r}, was {v!r}")
                    self.found.lost.add(f"pg:{i}")

    # -- the invariants
    @staticmethod
    def is_postgres(pid: int) -> bool:
        return os.path.basename(proc.exe(pid) or "") == "postgres"

    def check(self, label: str) -> None:
        snap = snapshot()
        kv_port, mc_port = str(self.run.ports["kv"]), str(self.run.ports["memcached"])
        redis_mark = f":{self.run.ports['redis']}"
        instances: dict[str, list[int]] = defaultdict(list)
        for p in snap.values():
            base = os.path.basename(p.cmd[0].split(" ")[0]) if p.cmd else ""
            line = " ".join(p.cmd)
            if any(a.endswith("kvstore.py") for a in p.cmd[:2]) and _after(p.cmd, "--port") == kv_port:
                instances["kv"].append(p.pid)
            elif base == "memcached" and _after(p.cmd, "-p") == mc_port:
                instances["memcached"].append(p.pid)
            elif base == "redis-server" and redis_mark in line:
                instances["redis"].append(p.pid)
            elif (
                _after(p.cmd, "-D") == self.pg_data
                and self.is_postgres(p.pid)
                and not self.is_postgres(p.ppid)
            ):
                # the postmaster; a backend just forked from it still has its command line
                instances["postgres"].append(p.pid)
            elif self.runtime_dir in p.cmd and ("supervise" in p.cmd or p.comm == SUPERVISOR_COMM):
                instances["supervisor"].append(p.pid)
        for name, pids in instances.items():
            if len(pids) > 1:
                key = (name, tuple(sorted(pids)))
                if key not in self.found.duplicates:
                    self.found.note(f"{label}: {len(pids)} instances of {name}: {sorted(pids)}")
                self.found.duplicates.add(key)
        current = {d["pid"] for d in self.current.values() if d["kind"] == "attached"}
        for sid, start in self.attached_seen.items():
            if sid in current:
                continue
            leader = snap.get(sid)
            if leader is not None and leader.start != start:
                continue  # the pid was free again, so that session was empty; a new one has it
            members = sorted(p.pid for p in snap.values() if p.sid == sid)
            for pid in members:
                if (sid, pid) not in self.found.orphans:
                    self.found.note(f"{label}: orphan {pid} {snap[pid].cmd} in the session of {sid}")
                self.found.orphans.add((sid, pid))
        for pid, start in self.sentinels.items():
            if not living(pid, start) and pid not in self.found.wrong_kills:
                self.found.note(f"{label}: sentinel {pid} was killed")
                self.found.wrong_kills.add(pid)
        self.check_writes(label)

    # -- sentinels
    def sentinel(self) -> int:
        p = subprocess.Popen(
            ["sleep", "100000"], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        self.sentinel_procs.append(p)
        st = proc.stat(p.pid)
        assert st is not None
        self.sentinels[p.pid] = st.starttime
        return p.pid

    # -- the faults
    def up_for(self, name: str, least: float = MIN_UPTIME) -> int:
        """The daemon's pid once it has been running for ``least`` seconds (see the docstring)."""

        def old_enough() -> int | None:
            d = self.daemon(name)
            if d["state"] != "running" or not d["pid"] or not d["started_at"]:
                return None
            return int(d["pid"]) if time.time() - d["started_at"] >= least else None

        return wait_for(old_enough, SETTLE_TIMEOUT, f"{name} up for {least}s", interval=0.05)

    def supervisor_up_for(self, least: float = MIN_UPTIME) -> int:
        def old_enough() -> int | None:
            sup = self.status()["supervisor"]
            return int(sup["pid"]) if time.time() - sup["started_at"] >= least else None

        return wait_for(old_enough, SETTLE_TIMEOUT, "the supervisor up for a while", interval=0.05)

    def prepare(self, kind: str) -> Callable[[], str]:
        """Wait for the fault's preconditions; return the fault itself (it returns a detail).

        It also sets :attr:`done`: what the next settle waits for besides a healthy site, so a
        settle never passes before the fault has taken effect (a HUP is handled asynchronously).
        """
        status = self.status()
        attached = {d["name"]: d["pid"] for d in status["daemons"] if d["kind"] == "attached"}

        def restarted(names: dict[str, int]) -> Callable[[dict[str, Any], list[int]], str | None]:
            def check(st: dict[str, Any], _workers: list[int]) -> str | None:
                same = [n for n, d in _named(st).items() if n in names and d["pid"] == names[n]]
                return f"{same} not restarted yet" if same else None

            return check

        if kind in ("kill_kv", "kill_redis", "kill_postgres"):
            name = kind.removeprefix("kill_")
            pid = self.up_for(name)
            program = {"kv": "kvstore.py", "redis": "redis-server", "postgres": "postgres"}[name]
            self.done = restarted({name: pid})
            return lambda: self.kill(pid, name, lambda cmd: any(program in a for a in cmd[:2]))
        if kind in ("kill_supervisor", "stop_cont_supervisor"):
            pid = self.supervisor_up_for()

            def is_supervisor(cmd: tuple[str, ...]) -> bool:
                return self.runtime_dir in cmd and ("supervise" in cmd or f"comm={SUPERVISOR_COMM}" in cmd)

            if kind == "kill_supervisor":
                # the guard empties the attached sessions: those daemons come back with new pids
                respawned = restarted(attached)
                self.done = lambda st, w: (
                    "the same supervisor" if st["supervisor"]["pid"] == pid else respawned(st, w)
                )
                return lambda: self.kill(pid, "supervisor", is_supervisor)

            def stop_cont() -> str:
                pause = round(self.rng.uniform(0.1, 0.8), 3)
                signal_verified(pid, signal.SIGSTOP, is_supervisor)
                time.sleep(pause)  # the fault itself: the supervisor frozen for a moment
                signal_verified(pid, signal.SIGCONT, is_supervisor)
                return f"supervisor {pid} stopped for {pause}s"

            self.done = lambda st, _w: None if st["supervisor"]["pid"] == pid else "a new supervisor"
            return stop_cont
        master = self.master_pid()
        assert master is not None
        before = self.workers(master, snapshot())
        if kind == "kill_worker":
            worker = self.rng.choice(before)
            self.done = lambda _st, w: f"worker {worker} still listed" if worker in w else None
            return lambda: self.kill(worker, "worker", lambda cmd: str(self.pidfile) in cmd)
        if kind == "redis_pidfile_sentinel":
            self.done = restarted({"redis": status_pid(status, "redis")})
            return self.redis_pidfile_sentinel
        # a reload (HUP, a new master after USR2) or a new server: new workers, and the attached
        # daemons restarted (on_reload "restart", the default; stopped with the last owner)
        reloaded = restarted(attached)
        self.done = lambda st, w: (
            (f"old workers {sorted(set(w) & set(before))}" if set(w) & set(before) else None)
            or (reloaded(st, w))
        )
        if kind == "hup_master":
            return lambda: self.hup(master)
        if kind == "usr2_then_term_old":
            return lambda: self.usr2(master)
        if kind == "kill_master_restart":
            return lambda: self.kill_master(master)
        raise AssertionError(kind)

    def kill(self, pid: int, what: str, looks_right: Callable[[tuple[str, ...]], bool]) -> str:
        signal_verified(pid, signal.SIGKILL, looks_right)
        return f"SIGKILL {what} {pid}"

    def hup(self, master: int) -> str:
        signal_verified(master, signal.SIGHUP, lambda cmd: str(self.pidfile) in cmd)
        return f"HUP master {master}"

    def usr2(self, old: int) -> str:
        signal_verified(old, signal.SIGUSR2, lambda cmd: str(self.pidfile) in cmd)
        second = Path(f"{self.pidfile}.2")

        def new_master() -> int | None:
            pid = int(second.read_text().split()[0])
            st = proc.stat(pid)
            return pid if st is not None and st.ppid == old else None

        new = wait_for(new_master, SETTLE_TIMEOUT, "the new master's pidfile", interval=0.02)
        wait_for(
            lambda: new in self.status()["supervisor"]["owners"] and len(self.workers(new, snapshot())) == 2,
            SETTLE_TIMEOUT,
            "the new master owning the daemons, with its workers",
            interval=0.02,
        )
        signal_verified(old, signal.SIGTERM, lambda cmd: str(self.pidfile) in cmd)
        self.reap(old)
        wait_for(lambda: self.master_pid() == new, SETTLE_TIMEOUT, "the new master promoted", interval=0.02)
        return f"USR2 master {old} -> new master {new}, TERM {old}"

    def kill_master(self, master: int) -> str:
        signal_verified(master, signal.SIGKILL, lambda cmd: str(self.pidfile) in cmd)
        self.reap(master)
        # Its workers notice their parent is gone after their next request, and hold the listening
        # socket until then: the same command cannot bind before they are gone.
        wait_for(
            lambda: not any(self.is_ours(p) for p in snapshot().values()),
            SETTLE_TIMEOUT,
            "the killed master's workers to exit",
            interval=0.02,
        )
        # gunicorn refuses a pidfile naming a live pid; a master that was not our child (after
        # USR2) stays a zombie of pid 1 here, which counts as live: clear the stale file first.
        if self.master_pid() is None:
            self.pidfile.unlink(missing_ok=True)
        self.start_server()
        return f"SIGKILL master {master}, restarted as {self.run.servers[-1].pid}"

    def redis_pidfile_sentinel(self) -> str:
        old = self.current["redis"]["pid"]
        sentinel = self.sentinel()
        client.call(self.runtime_dir, "stop", names=["redis"])
        wait_for(
            lambda: self.daemon("redis")["state"] == "stopped" and proc.stat(old) is None,
            SETTLE_TIMEOUT,
            "redis stopped by command",
            interval=0.02,
        )
        self.redis_pidfile.write_text(f"{sentinel}\n")
        client.call(self.runtime_dir, "start", names=["redis"])
        new = wait_for(
            lambda: (d := self.daemon("redis"))["state"] == "running" and d["pid"],
            SETTLE_TIMEOUT,
            "redis started again",
            interval=0.02,
        )
        if new == sentinel:  # adopted: it would be signalled as redis from now on
            self.found.note(f"redis' pidfile named sentinel {sentinel} and the supervisor adopted it")
            self.found.wrong_kills.add(sentinel)
        log = Path(self.runtime_dir, "supervisor.log").read_text(errors="replace")
        self.refusals += [line for line in log.splitlines() if f"names pid {sentinel}, which is not" in line]
        return f"redis {old} stopped; its pidfile names sentinel {sentinel}; started: {new}"

    # -- the schedule
    def schedule(self, n: int, kinds: dict[str, int]) -> list[str]:
        names = list(kinds)
        plan = self.rng.choices(names, weights=[kinds[k] for k in names], k=n)
        if n >= 2 * len(names):  # every kind at least once, in place of a kind drawn more than once
            for kind in names:
                if kind not in plan:
                    counts = Counter(plan)
                    spots = [i for i, k in enumerate(plan) if counts[k] > 1]
                    plan[self.rng.choice(spots)] = kind
        if "redis" in self.expected and n:
            plan.insert(self.rng.randrange(len(plan) + 1), "redis_pidfile_sentinel")
        return plan

    def window_excuses(self, req: Request) -> bool:
        return any(
            req.start <= (s.end or req.end) and req.end >= s.start for s in self.steps
        )  # unsettled: open

    def halt_load_after(self, seconds: float) -> None:
        assert self.load is not None
        time.sleep(seconds)  # load with no fault in it: every request must succeed
        self.load.stop()

    def report(
        self,
        began: float,
        kinds: dict[str, int],
        skipped: list[str],
        durations: dict[str, list[float]],
        finished: bool,
    ) -> tuple[str, dict[str, int]]:
        """The summary line, and the counters that are not 0; writes last-run.json."""
        if self.load is not None:
            self.load.stop()
        records = self.load.records if self.load is not None else []
        failed = [r for r in records if not r.ok]
        unexcused = [r for r in failed if not self.window_excuses(r)]
        for r in unexcused[:10]:
            self.found.note(f"unexcused failure at +{r.start - began:.2f}s: {r.why}")
        summary = {
            "seed": SEED,
            "faults": len([s for s in self.steps if s.kind != "redis_pidfile_sentinel"]),
            "requests": len(records),
            "failed_unexcused": len(unexcused),
            "orphans": len(self.found.orphans),
            "duplicates": len(self.found.duplicates),
            "wrong_kills": len(self.found.wrong_kills),
            "lost_writes": len(self.found.lost),
            "elapsed": round(time.monotonic() - began, 1),
        }
        line = "chaos: " + " ".join(f"{k}={v}{'s' if k == 'elapsed' else ''}" for k, v in summary.items())
        if not finished:
            line += " (interrupted: see the error)"
        details = {
            **summary,
            "finished": finished,
            "failed_excused": len(failed) - len(unexcused),
            "kinds": dict(Counter(s.kind for s in self.steps)),
            "settle_seconds": {
                k: {"n": len(v), "mean": round(sum(v) / len(v), 3), "max": round(max(v), 3)}
                for k, v in durations.items()
            },
            "weights": kinds,
            "writes": {"redis_keys": len(self.keys), "postgres_rows": len(self.rows)},
            "daemons": sorted(self.expected),
            "skipped": skipped,
            "notes": self.found.notes,
            "sentinel_refused": self.refusals,
            "kept_in": str(self.keep),
            "steps": [
                [round(s.start - began, 3), round(s.end - s.start, 3), s.kind, s.detail] for s in self.steps
            ],
        }
        LAST_RUN.write_text(json.dumps(details, indent=1) + "\n")
        counters = ("failed_unexcused", "orphans", "duplicates", "wrong_kills", "lost_writes")
        return line, {k: int(summary[k]) for k in counters if summary[k]}

    def log(self, text: str) -> None:
        with self.journal.open("a") as f:
            f.write(f"{time.monotonic():.3f} {text}\n")

    # -- teardown
    def teardown(self) -> list[str]:
        if self.load is not None:
            self.load.stop()
        with contextlib.suppress(OSError):
            shutil.copytree(
                self.runtime_dir, self.keep / "runtime-dir", ignore=shutil.ignore_patterns("*.sock")
            )
        problems = self.run.cleanup()
        sessions = {**self.attached_seen, **self.smart_seen}

        def leftovers() -> list[int]:
            snap = snapshot()
            return sorted(
                p.pid
                for p in snap.values()
                if p.sid in sessions and (snap.get(p.sid) is None or snap[p.sid].start == sessions[p.sid])
            )

        try:
            wait_for(lambda: not leftovers(), 10, "the daemons' sessions to empty", interval=0.05)
        except AssertionError:
            left = leftovers()
            problems.append(f"left in daemon sessions: {[(p, proc.cmdline(p)) for p in left]}")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        for p in self.sentinel_procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        gunicorns = sorted(p.pid for p in snapshot().values() if self.is_ours(p))
        if gunicorns:
            problems.append(f"gunicorn processes still running: {gunicorns}")
        return problems


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    run = SampleRun("django", tmp_path)
    box = Chaos(run, random.Random(SEED), tmp_path)
    try:
        yield box
    finally:
        problems = box.teardown()
        assert not problems, problems


@pytest.mark.timeout(int(240 + FAULTS * 2))
def test_chaos__faults_under_load_break_no_invariant(chaos: Chaos, chaos_summary: list[str]) -> None:
    began = time.monotonic()
    kinds = {k: w for k, w in WEIGHTS.items() if NEEDS.get(k, "kv") in chaos.expected}
    skipped = [
        f"{name}: not installed, its faults and writes are skipped"
        for name in ("redis", "postgres", "memcached")
        if name not in chaos.expected
    ]
    plan = chaos.schedule(FAULTS, kinds)
    durations: dict[str, list[float]] = defaultdict(list)
    finished = False
    try:
        chaos.sentinel()  # a process that is not ours, in its own session: nothing may kill it
        chaos.start_server()
        chaos.settle(BOOT_TIMEOUT)
        chaos.prepare_writes()
        chaos.check("boot")
        chaos.load = Load(chaos.run.port, set(chaos.expected), time.monotonic() + 240 + FAULTS * 2, 1_000_000)
        chaos.load.start()
        for i, kind in enumerate(plan):
            fault = chaos.prepare(kind)
            chaos.write(i)
            step = Step(kind, start=time.monotonic())
            chaos.steps.append(step)
            chaos.log(f"fault {i} {kind}")
            step.detail = fault()
            chaos.log(f"fault {i}: {step.detail}")
            chaos.settle()
            step.end = time.monotonic()
            chaos.log(f"fault {i} settled in {step.end - step.start:.3f}s")
            durations[kind].append(step.end - step.start)
            chaos.check(f"after fault {i} ({step.detail})")
        chaos.halt_load_after(1.0)
        chaos.settle()
        chaos.check("end")
        finished = True
    finally:
        line, bad = chaos.report(began, kinds, skipped, durations, finished)
        chaos_summary.append(line)
        chaos_summary.extend(f"chaos: skipped {s}" for s in skipped)
        chaos_summary.extend(f"chaos: {n}" for n in chaos.found.notes[:20])
    assert not bad, f"{line}\n" + "\n".join(chaos.found.notes)
