"""attachdaemon vs uWSGI (pyuwsgi), supervisord and circus: one run, the same probe, the same workload.

Run it through ``bash bench/run.sh [--quick]`` (which builds the venv and the probe). Every
process the bench starts runs under a small subreaper (``.build/reaper``) in its own session, so
whatever a supervisor leaves behind is found and ended by pid at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import http.client
import importlib.util
import itertools
import json
import os
import platform
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, ".build")
RESULTS = os.path.join(HERE, "results")
PY = sys.executable
VENV_BIN = os.path.dirname(PY)
PROBE = os.path.join(BUILD, "probe")
REAPER = os.path.join(BUILD, "reaper")
SPACING = 3.5  # > uWSGI's 3-s throttle window, supervisord's startsecs 1 s, attachdaemon's min_uptime 1 s
NS = 1_000_000_000
MS = 1_000_000
F_SETPIPE_SZ = 1031

PEER_DEFAULTS = {
    "attachdaemon": "SIGCHLD + pidfd driven loop, no tick; min_uptime 1 s; quick death n: delay 0 for n=1, "
    "then 0.1*2^(n-2) s +-10 %, capped at max_backoff 30 s; never gives up (max_retries none)",
    "uwsgi": "master-interval 1 s tick (waitpid polled once per loop, no SIGCHLD wake-up); respawn "
    "throttle when the last spawn was <= 3 s ago (sleep = lifetime respawns - elapsed, >= 1 s, cap 300 s); "
    "smart pidfile check at most once per second; reload/stop: dumb daemons stopped one at a time with "
    "1-s sleeps (reload-mercy 3 s); daemons run through /bin/sh -c, here with an `exec` prefix",
    "supervisord": "main loop poll timeout 1 s (the SIGCHLD handler does not cut the poll short); "
    "startsecs 1, startretries 3, backoff 1, 2, 3 s then FATAL; no pidfile mode",
    "circus": "check_delay 5 s from an ini file (1 s through the Python API): watchers are reaped and "
    "respawned by a periodic callback, no SIGCHLD handler; no pidfile mode; flapping plugin off by default",
}
SYSTEMS = ("attachdaemon", "uwsgi", "supervisord", "circus")
SHORT = {
    "attachdaemon": "ad",
    "attachdaemon-portable": "ap",
    "uwsgi": "uw",
    "supervisord": "sd",
    "circus": "ci",
}
# attachdaemon again with its portable process layer forced (issue 14): timed only for crash →
# running, smart restart and idle wake-ups with smart daemons (bench/portable.py), beside linux.
PORTABLE = "attachdaemon-portable"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stats(values: list[float]) -> dict[str, Any] | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    p95 = vals[min(len(vals) - 1, max(0, round(0.95 * (len(vals) - 1))))]
    return {
        "n": len(vals),
        "min": vals[0],
        "median": statistics.median(vals),
        "p95": p95,
        "max": vals[-1],
        "values": vals if len(vals) <= 400 else None,
    }


# ---------------------------------------------------------------------------------------- /proc
def proc_children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in proc_children(p):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] != "Z"


def ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return int(data[data.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def read_text(path: str, size: int = -1) -> str:
    with open(path, "rb") as f:
        return f.read(size).decode(errors="replace")


def starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return int(data[data.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError):
        return None


def sample(pid: int | None) -> dict[str, int] | None:
    """CPU (clock ticks and scheduler ns), context switches (all threads), RSS and PSS (kB)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        sched = ctx = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    sched += int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            ctx += int(line.split()[1])
        rss = pss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
        return {
            "ticks": ticks,
            "sched_ns": sched,
            "ctx": ctx,
            "rss_kb": rss,
            "pss_kb": pss,
            "threads": len(os.listdir(f"/proc/{pid}/task")),
        }
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------ tracking
class Tracker:
    """Every top-level process runs under ``reaper`` in its own session; cleanup kills by pid."""

    def __init__(self) -> None:
        self.reapers: list[subprocess.Popen[bytes]] = []
        self.announced: dict[int, str] = {}  # pid -> tag, every daemon instance seen
        self.seen: dict[int, int | None] = {}  # every process of ours seen: pid -> start time
        self.killed = 0

    def note(self, pid: int) -> None:
        if pid not in self.seen:
            self.seen[pid] = starttime(pid)

    def still_alive(self) -> list[int]:
        return [p for p, st in self.seen.items() if st is not None and alive(p) and starttime(p) == st]

    def spawn(
        self, argv: list[str], logfile: str, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> subprocess.Popen[bytes]:
        with open(logfile, "ab") as out:
            p = subprocess.Popen(
                [REAPER, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                env=env,
                cwd=cwd,
                close_fds=True,
            )
        self.reapers.append(p)
        self.note(p.pid)
        return p

    def tree(self, reaper: subprocess.Popen[bytes]) -> list[int]:
        return descendants(reaper.pid) if reaper.poll() is None else []

    def kill_tree(self, reaper: subprocess.Popen[bytes], wait: float = 3.0) -> list[tuple[int, str]]:
        """SIGKILL everything under ``reaper`` (by pid); return what was still there."""
        left = [(p, cmdline(p)) for p in self.tree(reaper)]
        for p, _ in left:
            self.note(p)
        self.killed += len(left)
        for pid, _ in reversed(left):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            reaper.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(reaper.pid, signal.SIGKILL)
            reaper.wait()
        return left

    def cleanup(self) -> tuple[int, list[str]]:
        ended, left = 0, []
        for r in self.reapers:
            if r.poll() is None:
                ended += 1 + len(self.kill_tree(r))
        time.sleep(0.2)
        for pid in self.announced:
            if alive(pid) and PROBE in cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                ended += 1
        time.sleep(0.2)
        for pid, tag in self.announced.items():
            if alive(pid) and PROBE in cmdline(pid):
                left.append(f"{pid} ({tag})")
        for r in self.reapers:
            if r.poll() is None:
                left.append(f"reaper {r.pid}")
        return ended, left


# ----------------------------------------------------------------------------------- announces
class Announcer:
    """One FIFO that every probe writes "<tag> <pid> <monotonic ns>" to."""

    def __init__(self, path: str, tracker: Tracker) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, 1 << 20)
        self.buf = b""
        self.events: dict[str, list[tuple[int, int]]] = {}
        self.tracker = tracker

    def pump(self, timeout: float) -> int:
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not r:
            return 0
        n = 0
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            parts = line.decode().split()
            if len(parts) != 3:
                continue
            tag, pid, ns = parts[0], int(parts[1]), int(parts[2])
            self.events.setdefault(tag, []).append((pid, ns))
            self.tracker.announced[pid] = tag
            self.tracker.note(pid)
            n += 1
        return n

    def drain(self) -> None:
        while self.pump(0):
            pass

    def after(self, tag: str, t0: int) -> tuple[int, int] | None:
        for pid, ns in self.events.get(tag, ()):
            if ns >= t0:
                return pid, ns
        return None

    def wait(self, tag: str, t0: int, timeout: float) -> tuple[int, int] | None:
        end = time.monotonic() + timeout
        while True:
            hit = self.after(tag, t0)
            if hit or time.monotonic() >= end:
                return hit
            self.pump(end - time.monotonic())

    def wait_all(self, tags: list[str], t0: int, timeout: float) -> dict[str, tuple[int, int]]:
        end = time.monotonic() + timeout
        got: dict[str, tuple[int, int]] = {}
        todo = list(tags)
        while True:
            still = []
            for t in todo:
                hit = self.after(t, t0)
                if hit:
                    got[t] = hit
                else:
                    still.append(t)
            todo = still
            if not todo or time.monotonic() >= end:
                return got
            self.pump(min(0.5, end - time.monotonic()))

    def latest(self, tag: str) -> tuple[int, int] | None:
        ev = self.events.get(tag)
        return ev[-1] if ev else None


# ------------------------------------------------------------------------------------- systems
class Instance:
    """One supervisor (attachdaemon or a peer) running a list of probe daemons."""

    system = ""
    smart_ok = False

    def __init__(self, bench: Bench, label: str, daemons: list[tuple[str, str]]) -> None:
        self.bench = bench
        self.dir = tempfile.mkdtemp(prefix=f"{SHORT[self.system]}", dir=bench.tmp)
        self.daemons = daemons  # (name, mode) with mode idle | crash | smart | launcher
        self.tags = {name: f"{SHORT[self.system]}{label}_{name}" for name, _ in daemons}
        self.reaper: subprocess.Popen[bytes] | None = None
        self.t_start = 0
        self.logfile = os.path.join(self.dir, "out.log")

    def argv(self, name: str, mode: str) -> list[str]:
        a = [PROBE, self.bench.ann.path, self.tags[name]]
        if mode == "crash":
            a.append("crash")
        elif mode == "smart":
            a += ["smart", self.pidfile(name)]
        elif mode == "launcher":
            a = [self.launcher(name)]
        return a

    def launcher(self, name: str) -> str:
        """A smart daemon started through an `sh` script: the script double-forks the probe (a
        background job of a subshell) and writes the probe's pid itself. The pidfile names the
        probe, which is not the declared program: the supervisor must know it by its launch."""
        path = os.path.join(self.dir, f"{name}.sh")
        probe = shlex.join([PROBE, self.bench.ann.path, self.tags[name]])
        pidf = shlex.quote(self.pidfile(name))
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\n( {probe} & echo $! > {pidf}.tmp && mv {pidf}.tmp {pidf} )\n")
        os.chmod(path, 0o755)
        return path

    def pidfile(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.pid")

    def start(self) -> None:
        raise NotImplementedError

    def supervisor_pid(self) -> int | None:
        raise NotImplementedError

    def guard_pid(self) -> int | None:
        return None

    def stop(self) -> None:
        """Ask for a graceful stop of the supervisor and its attached daemons."""
        raise NotImplementedError

    def status_cli(self) -> list[str] | None:
        return None

    def status_call(self) -> Any:
        return None

    def left_why(self) -> str:
        return "still running after the supervisor's graceful stop (waited 5 s); killed by the bench"

    def close(self, wait: float = 5.0) -> list[tuple[int, str]]:
        """Stop, wait for the tree to end, kill whatever is left; return the leftovers."""
        if self.reaper is None:
            return []
        if self.reaper.poll() is None:
            with contextlib.suppress(Exception):
                self.stop()
            end = time.monotonic() + wait
            while time.monotonic() < end and self.reaper.poll() is None:
                time.sleep(0.05)
        # Smart daemons outlive their supervisor by design: they are ended here too, labelled.
        smart = set()
        for name, mode in self.daemons:
            hit = self.bench.ann.latest(self.tags[name]) if mode in ("smart", "launcher") else None
            if hit and alive(hit[0]):
                smart.add(hit[0])
        left = self.bench.tracker.kill_tree(self.reaper) if self.reaper.poll() is None else []
        left = [(p, c + " [smart, survives by design]" if p in smart else c) for p, c in left]
        for pid in smart - {p for p, _ in left}:
            if alive(pid):
                left.append((pid, cmdline(pid) + " [smart, survives by design]"))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return left


class AttachDaemon(Instance):
    system = "attachdaemon"
    smart_ok = True
    OWNER = textwrap.dedent(
        """
        import json, os, sys, time, signal
        from attachdaemon_core.hosts import runtime
        from attachdaemon_core.spec.declarations import parse_declarations
        rt, path = sys.argv[1], sys.argv[2]
        with open(path) as f:
            specs = parse_declarations(json.load(f), source=path)
        t0 = time.monotonic_ns()
        runtime.join(rt, os.getpid(), runtime.payload(specs, source=path))
        print("joined", t0, time.monotonic_ns(), flush=True)
        while True:
            signal.pause()
        """
    )

    def start(self) -> None:
        self.rt = os.path.join(self.dir, "rt")
        decl = {}
        for name, mode in self.daemons:
            d: dict[str, Any] = {"command": self.argv(name, mode)}
            if mode in ("smart", "launcher"):
                d["pidfile"] = self.pidfile(name)
            decl[name] = d
        path = os.path.join(self.dir, "decl.json")
        with open(path, "w") as f:
            json.dump(decl, f)
        env = self.owner_env()
        self.reaper = self.bench.tracker.spawn([PY, "-c", self.OWNER, self.rt, path], self.logfile, env=env)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with open(self.logfile) as f:
                for line in f:
                    if line.startswith("joined"):
                        self.t_start = int(line.split()[1])
                        self.owner = self.reaper_child()
                        return
            time.sleep(0.005)
        raise RuntimeError(f"attachdaemon owner did not join; see {self.logfile}")

    def owner_env(self) -> dict[str, str]:
        """The owner's environment, which the guard and the supervisor inherit."""
        env = dict(os.environ)
        env.pop("ATTACH_DAEMONS_RUNTIME_DIR", None)
        return env

    def reaper_child(self) -> int:
        kids = proc_children(self.reaper.pid)  # type: ignore[union-attr]
        for k in kids:
            if "-c" in cmdline(k) and "runtime.join" in cmdline(k):
                return k
        return kids[0]

    def status_call(self) -> Any:
        from attachdaemon_core.control import client

        return client.call(self.rt, "status")

    def supervisor_pid(self) -> int | None:
        try:
            return int(self.status_call()["supervisor"]["pid"])
        except Exception:
            return None

    def guard_pid(self) -> int | None:
        sup = self.supervisor_pid()
        return ppid_of(sup) if sup else None

    def stop(self) -> None:
        from attachdaemon_core.hosts import runtime

        runtime.release(self.rt, self.owner, wait=0)

    def close(self, wait: float = 5.0) -> list[tuple[int, str]]:
        if self.reaper is not None and self.reaper.poll() is None:
            with contextlib.suppress(Exception):
                self.stop()
            end = time.monotonic() + wait
            while time.monotonic() < end and len(descendants(self.reaper.pid)) > 1:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.owner, signal.SIGKILL)
        return super().close(wait)

    def status_cli(self) -> list[str]:
        return [PY, "-m", "attachdaemon_core", "status", "--json"]

    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": self.rt}


class AttachDaemonPortable(AttachDaemon):
    """The same owner and declarations, with ``ATTACHDAEMON_PLATFORM=portable`` in the
    environment the supervisor inherits: psutil, and on Linux (no kqueue) exit polling."""

    system = PORTABLE

    def owner_env(self) -> dict[str, str]:
        return {**super().owner_env(), "ATTACHDAEMON_PLATFORM": "portable"}

    def cli_env(self) -> dict[str, str]:
        return {**super().cli_env(), "ATTACHDAEMON_PLATFORM": "portable"}


class UWSGI(Instance):
    system = "uwsgi"
    smart_ok = True

    def start(self) -> None:
        app = os.path.join(self.dir, "app.py")
        with open(app, "w") as f:
            f.write(
                "def application(env, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [b'ok']\n"
            )
        self.masterpid = os.path.join(self.dir, "m.pid")
        self.stats_sock = os.path.join(self.dir, "stats.sock")
        lines = [
            "[uwsgi]",
            "master = true",
            "socket = 127.0.0.1:0",
            f"wsgi-file = {app}",
            "processes = 1",
            f"logto = {os.path.join(self.dir, 'u.log')}",
            f"pidfile = {self.masterpid}",
            f"master-fifo = {os.path.join(self.dir, 'fifo')}",
            f"stats = {self.stats_sock}",
            f"binary-path = {os.path.join(VENV_BIN, 'python3')}",
        ]
        for name, mode in self.daemons:
            cmd = "exec " + shlex.join(self.argv(name, mode))
            if mode in ("smart", "launcher"):
                lines.append(f"smart-attach-daemon = {self.pidfile(name)} {cmd}")
            else:
                lines.append(f"attach-daemon = {cmd}")
        ini = os.path.join(self.dir, "u.ini")
        with open(ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.t_start = time.monotonic_ns()
        self.reaper = self.bench.tracker.spawn(
            [os.path.join(VENV_BIN, "uwsgi"), "--ini", ini], self.logfile, cwd=self.dir
        )

    def supervisor_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError), open(self.masterpid) as f:
            return int(f.read().strip())
        return None

    def stop(self) -> None:
        pid = self.supervisor_pid()
        if pid:
            os.kill(pid, signal.SIGINT)

    def close(self, wait: float = 5.0) -> list[tuple[int, str]]:
        if sum(1 for _, mode in self.daemons if mode not in ("smart", "launcher")) > 4:
            wait = 0.5  # it would take one second per daemon: not measured here, so do not wait
        return super().close(wait)

    def left_why(self) -> str:
        n = sum(1 for _, mode in self.daemons if mode not in ("smart", "launcher"))
        if n > 4:
            return (
                f"uWSGI was still stopping its {n} attached daemons, one per second (expected; the bench "
                "did not wait); killed by the bench"
            )
        return super().left_why()

    def status_call(self) -> Any:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.stats_sock)
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
        s.close()
        return json.loads(buf)


class Supervisord(Instance):
    system = "supervisord"

    def start(self) -> None:
        self.conf = os.path.join(self.dir, "s.conf")
        self.sdpid = os.path.join(self.dir, "sd.pid")
        sock = os.path.join(self.dir, "s.sock")
        lines = [
            "[unix_http_server]",
            f"file = {sock}",
            "",
            "[supervisord]",
            "nodaemon = true",
            f"logfile = {os.path.join(self.dir, 'sd.log')}",
            f"pidfile = {self.sdpid}",
            f"childlogdir = {self.dir}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl = unix://{sock}",
            "",
        ]
        for name, mode in self.daemons:
            lines += [
                f"[program:{name}]",
                f"command = {shlex.join(self.argv(name, mode))}",
                "autorestart = true",
                "",
            ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        self.t_start = time.monotonic_ns()
        self.reaper = self.bench.tracker.spawn(
            [os.path.join(VENV_BIN, "supervisord"), "-n", "-c", self.conf], self.logfile, cwd=self.dir
        )

    def supervisor_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError), open(self.sdpid) as f:
            return int(f.read().strip())
        return None

    def stop(self) -> None:
        pid = self.supervisor_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)

    def status_cli(self) -> list[str]:
        return [os.path.join(VENV_BIN, "supervisorctl"), "-c", self.conf, "status"]


class Circus(Instance):
    system = "circus"

    def start(self) -> None:
        ini = os.path.join(self.dir, "c.ini")
        self.endpoint = f"ipc://{os.path.join(self.dir, 'ctl')}"
        lines = [
            "[circus]",
            f"endpoint = {self.endpoint}",
            f"pubsub_endpoint = ipc://{os.path.join(self.dir, 'pub')}",
            f"stats_endpoint = ipc://{os.path.join(self.dir, 'stats')}",
            "statsd = false",
            "",
        ]
        for name, mode in self.daemons:
            argv = self.argv(name, mode)
            lines += [
                f"[watcher:{name}]",
                f"cmd = {argv[0]}",
                f"args = {shlex.join(argv[1:])}",
                "numprocesses = 1",
                "",
            ]
        with open(ini, "w") as f:
            f.write("\n".join(lines))
        self.t_start = time.monotonic_ns()
        self.reaper = self.bench.tracker.spawn(
            [os.path.join(VENV_BIN, "circusd"), ini], self.logfile, cwd=self.dir
        )

    def supervisor_pid(self) -> int | None:
        if self.reaper is None:
            return None
        kids = proc_children(self.reaper.pid)
        for k in kids:
            if "circusd" in cmdline(k):
                return k
        return None

    def stop(self) -> None:
        pid = self.supervisor_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)

    def status_cli(self) -> list[str]:
        return [os.path.join(VENV_BIN, "circusctl"), "--endpoint", self.endpoint, "status"]


CLASSES: dict[str, type[Instance]] = {
    "attachdaemon": AttachDaemon,
    PORTABLE: AttachDaemonPortable,
    "uwsgi": UWSGI,
    "supervisord": Supervisord,
    "circus": Circus,
}


# --------------------------------------------------------------------------------------- bench
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="adb-", dir="/tmp")
        self.tracker = Tracker()
        self.ann = Announcer(os.path.join(self.tmp, "ann"), self.tracker)
        self.results: dict[str, Any] = {"metrics": {}, "notes": [], "unavailable": {}}
        self.available = self.check_peers()
        # The portable layer beside linux: in a full run, or when --only names it.
        self.portable = not args.only or PORTABLE in args.only.split(",")
        self.instances: list[Instance] = []

    def note(self, text: str) -> None:
        log("note: " + text)
        self.results["notes"].append(text)

    def check_peers(self) -> list[str]:
        ok = ["attachdaemon"]
        for system, exe in (("uwsgi", "uwsgi"), ("supervisord", "supervisord"), ("circus", "circusd")):
            if os.access(os.path.join(VENV_BIN, exe), os.X_OK):
                ok.append(system)
            else:
                self.results["unavailable"][system] = f"{exe} not installed in the bench venv"
        only = self.args.only.split(",") if self.args.only else None
        return [s for s in ok if only is None or s in only or s == "attachdaemon"]

    def put(self, metric: str, system: str, value: Any) -> None:
        self.results["metrics"].setdefault(metric, {})[system] = value

    def new(self, system: str, label: str, daemons: list[tuple[str, str]]) -> Instance:
        inst = CLASSES[system](self, label, daemons)
        self.instances.append(inst)
        return inst

    def start_all(self, insts: list[Instance], timeout: float = 60) -> list[Instance]:
        """Start every instance, wait until each daemon has announced; drop failures with a note."""
        for inst in insts:
            try:
                inst.start()
            except Exception as exc:
                self.note(f"{inst.system}: could not start: {exc}")
        ok = []
        for inst in insts:
            if inst.reaper is None:
                continue
            tags = list(inst.tags.values())
            got = self.ann.wait_all(tags, 0, timeout)
            if len(got) < len(tags):
                self.note(
                    f"{inst.system}: only {len(got)} of {len(tags)} daemons announced within "
                    f"{timeout:.0f}s (log: {inst.logfile})"
                )
                self.close(inst)
                continue
            ok.append(inst)
        return ok

    def close(self, inst: Instance) -> None:
        if inst.reaper is not None:
            for p in descendants(inst.reaper.pid):
                self.tracker.note(p)
        left = inst.close()
        if left:
            why = inst.left_why()
            if all("survives by design" in c for _, c in left):
                why = "smart daemons, which outlive their supervisor by design; killed by the bench"
            self.results.setdefault("leftovers", []).append(
                {"system": inst.system, "why": why, "processes": [f"{p} {c}" for p, c in left]}
            )

    # ---------------------------------------------------------------------- probe self-timing
    def probe_self(self) -> None:
        n = 50 if self.quick else 200
        vals = []
        for i in range(n):
            tag = f"self{i}"
            t0 = time.monotonic_ns()
            pid = os.fork()
            if pid == 0:
                try:
                    os.execv(PROBE, [PROBE, self.ann.path, tag, "once"])
                finally:
                    os._exit(127)
            hit = self.ann.wait(tag, 0, 5)
            os.waitpid(pid, 0)
            if hit:
                vals.append((hit[1] - t0) / MS)
        self.results["probe"] = stats(vals)
        kind = "C probe" if self.results["meta"]["probe"] == "c" else "Python fallback probe"
        self.results["probe"]["how"] = f"{kind}; os.fork() + os.execv() from the Python bench process"
        log(f"probe fork+exec+announce median {self.results['probe']['median']:.2f} ms")

    # ------------------------------------------------------------------ 1+2: crash and smart
    def crash_and_smart(self) -> None:
        rounds = 4 if self.quick else 15
        insts = []
        for system in self.available + ([PORTABLE] if self.portable else []):
            daemons = [("c1", "idle")]
            if CLASSES[system].smart_ok:
                daemons += [("s1", "smart"), ("s2", "launcher")]
            insts.append(self.new(system, "k", daemons))
        insts = self.start_all(insts)
        from portable import layer_check

        for inst in insts:
            if isinstance(inst, AttachDaemon):
                layer_check(self, inst)
        log(f"crash/smart: {rounds} spaced rounds, spacing {SPACING}s")
        res: dict[str, dict[str, list[float | None]]] = {
            i.system: {"crash": [], "smart": [], "launcher": []} for i in insts
        }
        for r in range(rounds):
            round_start = time.monotonic()
            for inst in insts:
                for name, mode in inst.daemons:
                    tag = inst.tags[name]
                    cur = self.ann.latest(tag)
                    if cur is None:
                        continue
                    age = (time.monotonic_ns() - cur[1]) / NS
                    if age < SPACING:
                        time.sleep(SPACING - age)
                    self.ann.drain()
                    t0 = time.monotonic_ns()
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(cur[0], signal.SIGKILL)
                    hit = self.ann.wait(tag, t0, 15)
                    key = mode if mode in ("smart", "launcher") else "crash"
                    res[inst.system][key].append((hit[1] - t0) / MS if hit else None)
            log(
                f"  round {r + 1}/{rounds} done in {time.monotonic() - round_start:.1f}s: "
                + ", ".join(
                    f"{s}={v['crash'][-1]:.1f}ms" if v["crash"][-1] is not None else f"{s}=timeout"
                    for s, v in res.items()
                )
            )
        for system, v in res.items():
            crash = v["crash"]
            timeouts = sum(1 for x in crash if x is None)
            self.put("crash_first", system, stats([crash[0]] if crash and crash[0] is not None else []))
            self.put("crash_spaced", system, {**(stats(crash) or {}), "timeouts": timeouts})
            if v["smart"]:
                self.put(
                    "smart_restart",
                    system,
                    {**(stats(v["smart"]) or {}), "timeouts": sum(1 for x in v["smart"] if x is None)},
                )
            else:
                self.put("smart_restart", system, "n/a (no pidfile mode)")
            if v["launcher"]:
                self.put(
                    "launcher_restart",
                    system,
                    {**(stats(v["launcher"]) or {}), "timeouts": sum(1 for x in v["launcher"] if x is None)},
                )
            else:
                self.put("launcher_restart", system, "n/a (no pidfile mode)")
        for inst in insts:
            self.close(inst)

    # ------------------------------------------------------------------------- 1b: crash loop
    def crash_loop(self) -> None:
        window = 6.0 if self.quick else 20.0
        insts = [self.new(system, "l", [("loop", "crash")]) for system in self.available]
        for inst in insts:
            inst.start()
        log(f"crash loop: probes exit 3 right after announcing, watched for {window:.0f}s")
        end = time.monotonic() + window
        while time.monotonic() < end:
            self.ann.pump(end - time.monotonic())
        for inst in insts:
            ev = self.ann.events.get(inst.tags["loop"], [])
            starts = [ns for _, ns in ev]
            gaps = [(b - a) / MS for a, b in itertools.pairwise(starts)]
            state = None
            if isinstance(inst, AttachDaemon):
                with contextlib.suppress(Exception):
                    d = inst.status_call()["daemons"][0]
                    state = f"{d['state']}, restarts {d['restarts']}"
            elif isinstance(inst, Supervisord):
                with contextlib.suppress(Exception):
                    state = " ".join(
                        subprocess.run(
                            check=False, args=inst.status_cli(), capture_output=True, text=True, timeout=10
                        ).stdout.split()
                    )
            self.put(
                "crash_loop",
                inst.system,
                {
                    "window_s": window,
                    "starts": len(starts),
                    "gaps_ms": [round(g, 1) for g in gaps[:25]],
                    "state_at_end": state,
                    "first_gaps": stats(gaps[:3]) if gaps else None,
                },
            )
            log(
                f"  {inst.system}: {len(starts)} starts, gaps(ms) {[round(g) for g in gaps[:12]]} "
                f"{state or ''}"
            )
        for inst in insts:
            self.close(inst)

    # --------------------------------------------------------------------------- 4: idle cost
    def idle_measure(self, insts: list[Instance], n: int, window: float, key: str = "idle") -> None:
        pids = {}
        for inst in insts:  # ask before settling: a status call may itself arm a short timer
            sup = inst.supervisor_pid()
            pids[inst.system] = (sup, inst.guard_pid())
        time.sleep(1.5 if self.quick else 3.0)  # let start-up work settle
        before = {s: (sample(p), sample(g)) for s, (p, g) in pids.items()}
        t0 = time.monotonic()
        time.sleep(window)
        el = time.monotonic() - t0
        after = {s: (sample(p), sample(g)) for s, (p, g) in pids.items()}
        for s, (sup, guard) in pids.items():
            b, a = before[s], after[s]
            if not (b[0] and a[0]):
                self.put(f"{key}_{n}", s, "unmeasured (supervisor pid not found)")
                continue

            def d(key: str, i: int, a: tuple = a, b: tuple = b) -> int:
                if a[i] is None or b[i] is None:
                    return 0
                return a[i][key] - b[i][key]

            tick = os.sysconf("SC_CLK_TCK")
            r = {
                "window_s": round(el, 2),
                "supervisor_pid": sup,
                "guard_pid": guard,
                "cpu_ms_ticks": (d("ticks", 0) + d("ticks", 1)) * 1000 / tick,
                "cpu_ms_sched": (d("sched_ns", 0) + d("sched_ns", 1)) / MS,
                "supervisor_cpu_ms_sched": d("sched_ns", 0) / MS,
                "wakeups": d("ctx", 0) + d("ctx", 1),
                "wakeups_per_s": (d("ctx", 0) + d("ctx", 1)) / el,
                "supervisor_wakeups": d("ctx", 0),
                "rss_mb": a[0]["rss_kb"] / 1024,
                "pss_mb": a[0]["pss_kb"] / 1024,
                "rss_total_mb": (a[0]["rss_kb"] + (a[1]["rss_kb"] if a[1] else 0)) / 1024,
                "pss_total_mb": (a[0]["pss_kb"] + (a[1]["pss_kb"] if a[1] else 0)) / 1024,
                "threads": a[0]["threads"],
            }
            self.put(f"{key}_{n}", s, r)
            log(
                f"  {key} N={n} {s}: cpu {r['cpu_ms_sched']:.2f} ms, wakeups {r['wakeups']} "
                f"({r['wakeups_per_s']:.2f}/s), RSS {r['rss_mb']:.1f} MB, "
                f"PSS total {r['pss_total_mb']:.1f} MB"
            )

    def idle_small(self) -> None:
        window = 10.0 if self.quick else 30.0
        for n in (1, 50):
            log(f"idle N={n}: all systems side by side, {window:.0f}s window")
            insts = [self.new(s, f"i{n}", [(f"d{i}", "idle") for i in range(n)]) for s in self.available]
            insts = self.start_all(insts)
            self.idle_measure(insts, n, window)
            for inst in insts:
                self.close(inst)

    # ------------------------------------------------------------------------- 5: N=200 scale
    def scale(self) -> None:
        n = 200
        window = 10.0 if self.quick else 30.0
        stop_cap = 5.0 if self.quick else 10.0
        for system in self.available:
            log(f"scale N={n}: {system} alone")
            inst = self.new(system, "n", [(f"d{i}", "idle") for i in range(n)])
            self.ann.drain()
            try:
                inst.start()
            except Exception as exc:
                self.note(f"{system}: N={n} start failed: {exc}")
                self.close(inst)
                continue
            tags = list(inst.tags.values())
            got = self.ann.wait_all(tags, 0, 60)
            if len(got) < n:
                self.put("start_200", system, f"only {len(got)}/{n} within 60 s")
                self.close(inst)
                continue
            last = max(ns for _, ns in got.values())
            self.put(
                "start_200",
                system,
                {
                    "value_ms": (last - inst.t_start) / MS,
                    "first_ms": (min(ns for _, ns in got.values()) - inst.t_start) / MS,
                },
            )
            log(f"  start: {(last - inst.t_start) / MS:.0f} ms")
            # status latency
            calls, clis = [], []
            if isinstance(inst, (AttachDaemon, UWSGI)):
                for _ in range(10 if self.quick else 30):
                    t0 = time.perf_counter_ns()
                    try:
                        inst.status_call()
                    except Exception as exc:
                        self.note(f"{system}: status call failed: {exc}")
                        break
                    calls.append((time.perf_counter_ns() - t0) / MS)
            cli = inst.status_cli()
            if cli:
                env = inst.cli_env() if isinstance(inst, AttachDaemon) else None
                for _ in range(3 if self.quick else 8):
                    t0 = time.perf_counter_ns()
                    p = subprocess.run(check=False, args=cli, capture_output=True, env=env, timeout=30)
                    clis.append((time.perf_counter_ns() - t0) / MS)
                    if p.returncode not in (0, 3):
                        self.note(f"{system}: status CLI exit {p.returncode}: {p.stderr[-300:]!r}")
            self.put("status_call", system, stats(calls) if calls else "n/a")
            self.put("status_cli", system, stats(clis) if clis else "n/a")
            self.idle_measure([inst], n, window)
            # stop
            pidfds = []
            for pid, _ in got.values():
                with contextlib.suppress(OSError):
                    pidfds.append(os.pidfd_open(pid))
            poller = select.poll()
            for fd in pidfds:
                poller.register(fd, select.POLLIN)
            t0 = time.monotonic_ns()
            inst.stop()
            remaining = len(pidfds)
            end = time.monotonic() + stop_cap
            while remaining and time.monotonic() < end:
                for fd, _ in poller.poll(max(1, int((end - time.monotonic()) * 1000))):
                    poller.unregister(fd)
                    remaining -= 1
            t1 = time.monotonic_ns()
            for fd in pidfds:
                os.close(fd)
            if remaining:
                self.put(
                    "stop_200",
                    system,
                    {
                        "value_ms": None,
                        "censored": True,
                        "text": f">{stop_cap:.0f} s ({n - remaining}/{n} gone)",
                    },
                )
                log(f"  stop: > {stop_cap:.0f}s, {n - remaining}/{n} gone")
            else:
                self.put("stop_200", system, {"value_ms": (t1 - t0) / MS})
                log(f"  stop: {(t1 - t0) / MS:.0f} ms")
            self.close(inst)

    # ---------------------------------------------------------------- 3+6: gunicorn and reload
    def gunicorn_available(self) -> bool:
        try:
            return (
                importlib.util.find_spec("attachdaemon_core.hosts.gunicorn") is not None
                and importlib.util.find_spec("gunicorn") is not None
            )
        except Exception:
            return False

    def free_port(self) -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def http_ok(self, port: int) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def gunicorn_instance(self, label: str, n: int) -> tuple[str, dict[str, str], list[str], str, str]:
        d = tempfile.mkdtemp(prefix="gu", dir=self.tmp)
        with open(os.path.join(d, "app.py"), "w") as f:
            f.write(
                "def app(env, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [b'ok']\n"
            )
        tags = [f"gu{label}_d{i}" for i in range(n)]
        decl = {f"d{i}": {"command": [PROBE, self.ann.path, tags[i]]} for i in range(n)}
        conf = os.path.join(d, "gunicorn.conf.py")
        with open(conf, "w") as f:
            if n:
                f.write("from attachdaemon_core.hosts.gunicorn import *  # noqa: F403\n")
                f.write(f"attach_daemons = {decl!r}\n")
                f.write(f"attach_daemons_runtime_dir = {os.path.join(d, 'rt')!r}\n")
            f.write("workers = 1\n")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("ATTACH_DAEMONS_RUNTIME_DIR", None)
        return d, env, tags, conf, os.path.join(d, "out.log")

    def gunicorn_boot(self) -> None:
        if not self.gunicorn_available():
            self.put("gunicorn_boot", "attachdaemon", "pending (attachdaemon_core.gunicorn not written yet)")
            return
        trials = 3 if self.quick else 7
        res: dict[str, list[float]] = {"none": [], "10": []}
        for t in range(trials):
            for label, n in (("none", 0), ("10", 10)):
                d, env, tags, conf, out = self.gunicorn_instance(f"b{t}{label}", n)
                port = self.free_port()
                t0 = time.monotonic_ns()
                r = self.tracker.spawn(
                    [os.path.join(VENV_BIN, "gunicorn"), "-c", conf, "-b", f"127.0.0.1:{port}", "app:app"],
                    out,
                    env=env,
                    cwd=d,
                )
                end = time.monotonic() + 20
                while time.monotonic() < end and not self.http_ok(port):
                    time.sleep(0.002)
                t1 = time.monotonic_ns()
                ok = self.http_ok(port)
                if n and ok:
                    got = self.ann.wait_all(tags, 0, 10)
                    if len(got) < n:
                        self.note(f"gunicorn boot: only {len(got)}/{n} daemons announced (log {out})")
                if ok:
                    res[label].append((t1 - t0) / MS)
                else:
                    self.note(f"gunicorn boot ({label}) never answered 200 (log {out})")
                self.stop_gunicorn(r)
        self.put("gunicorn_boot", "attachdaemon", {"none": stats(res["none"]), "with_10": stats(res["10"])})
        log(f"gunicorn boot: none {stats(res['none'])}, 10 daemons {stats(res['10'])}")

    def stop_gunicorn(self, r: subprocess.Popen[bytes]) -> None:
        kids = proc_children(r.pid)
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGTERM)
        end = time.monotonic() + 15
        while time.monotonic() < end and r.poll() is None:
            time.sleep(0.02)
        if r.poll() is None:
            left = self.tracker.kill_tree(r)
            self.results.setdefault("leftovers", []).append(
                {
                    "system": "gunicorn",
                    "why": "still running 15 s after TERM to the gunicorn master; killed",
                    "processes": [f"{p} {c}" for p, c in left],
                }
            )

    def reload(self) -> None:
        trials = 2 if self.quick else 5
        # uWSGI: HUP with 4 attach-daemons.
        if "uwsgi" in self.available:
            inst = self.new("uwsgi", "r", [(f"d{i}", "idle") for i in range(4)])
            ok = self.start_all([inst])
            vals = []
            if ok:
                for t in range(trials):
                    time.sleep(SPACING)
                    self.ann.drain()
                    t0 = time.monotonic_ns()
                    os.kill(inst.supervisor_pid(), signal.SIGHUP)
                    got = self.ann.wait_all(list(inst.tags.values()), t0, 30)
                    if len(got) < 4:
                        self.note(f"uwsgi reload {t}: only {len(got)}/4 daemons back within 30 s")
                        continue
                    vals.append((max(ns for _, ns in got.values()) - t0) / MS)
                    log(f"  uwsgi reload {t + 1}/{trials}: {vals[-1]:.0f} ms")
                self.close(inst)
            self.put("reload_4", "uwsgi", stats(vals))
        if not self.gunicorn_available():
            self.put("reload_4", "attachdaemon", "pending (attachdaemon_core.gunicorn not written yet)")
            return
        d, env, tags, conf, out = self.gunicorn_instance("r", 4)
        port = self.free_port()
        r = self.tracker.spawn(
            [
                os.path.join(VENV_BIN, "gunicorn"),
                "-c",
                conf,
                "-b",
                f"127.0.0.1:{port}",
                "--pid",
                os.path.join(d, "g.pid"),
                "app:app",
            ],
            out,
            env=env,
            cwd=d,
        )
        got = self.ann.wait_all(tags, 0, 30)
        vals = []
        if len(got) == 4:
            master = int(read_text(os.path.join(d, "g.pid")).strip())
            for t in range(trials):
                time.sleep(SPACING)
                self.ann.drain()
                t0 = time.monotonic_ns()
                os.kill(master, signal.SIGHUP)
                got = self.ann.wait_all(tags, t0, 30)
                if len(got) < 4:
                    self.note(f"gunicorn reload {t}: only {len(got)}/4 daemons back within 30 s (log {out})")
                    continue
                vals.append((max(ns for _, ns in got.values()) - t0) / MS)
                log(f"  gunicorn+attachdaemon reload {t + 1}/{trials}: {vals[-1]:.0f} ms")
        else:
            self.note(f"gunicorn reload: daemons did not start (log {out})")
        self.stop_gunicorn(r)
        self.put("reload_4", "attachdaemon", stats(vals))

    # ------------------------------------------- 4b: idle with smart daemons, linux vs portable
    def portable_idle(self) -> None:
        from portable import PortableIdle

        if self.portable:
            PortableIdle(self).run()

    # ----------------------------------------------------------------- 7: the exec form
    def exec_form(self) -> None:
        from exec_form import ExecForm

        ExecForm(self).run()

    # ----------------------------------------------------------------------------------- run
    def meta(self, argv: list[str]) -> None:
        self.results["meta"] = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "command": "bash bench/run.sh" + ("".join(" " + shlex.quote(a) for a in argv)),
            "quick": self.quick,
            "probe": "python" if read_text(PROBE, 2) == "#!" else "c",
            "versions": versions(),
            "peer_defaults": PEER_DEFAULTS,
            "spacing_s": SPACING,
            "loadavg_start": os.getloadavg()[0],
            "layer": {"attachdaemon": auto_layer(), PORTABLE: "portable"},
            "portable_poll_interval_s": poll_interval(),
        }

    def run(self, argv: list[str]) -> int:
        t_begin = time.monotonic()
        self.meta(argv)
        systems = self.available + ([PORTABLE] if self.portable else [])
        log(f"bench in {self.tmp}; systems: {', '.join(systems)}; quick={self.quick}")
        for s, why in self.results["unavailable"].items():
            log(f"{s}: unavailable: {why}")
        phases = [
            self.probe_self,
            self.crash_and_smart,
            self.crash_loop,
            self.idle_small,
            self.portable_idle,
            self.scale,
            self.reload,
            self.gunicorn_boot,
            self.exec_form,
        ]
        skip = set(self.args.skip.split(",")) if self.args.skip else set()
        try:
            for phase in phases:
                if phase.__name__ in skip:
                    continue
                try:
                    phase()
                except Exception as exc:
                    import traceback

                    traceback.print_exc()
                    self.note(f"phase {phase.__name__} failed: {exc!r}")
                    for inst in self.instances:
                        if inst.reaper is not None and inst.reaper.poll() is None:
                            self.close(inst)
        finally:
            for inst in self.instances:
                if inst.reaper is not None and inst.reaper.poll() is None:
                    self.close(inst)
            ended, left = self.tracker.cleanup()
            time.sleep(0.3)
            left += [f"{p} {cmdline(p)}" for p in self.tracker.still_alive()]
            self.results["cleanup"] = {
                "ended_at_end": ended,
                "left": sorted(set(left)),
                "processes_seen": len(self.tracker.seen),
                "killed_by_bench": self.tracker.killed + ended,
                "leftovers_during_run": self.results.get("leftovers", []),
            }
            self.results["meta"]["duration_s"] = round(time.monotonic() - t_begin, 1)
            self.results["meta"]["loadavg_end"] = os.getloadavg()[0]
            os.close(self.ann.fd)
            shutil.rmtree(self.tmp, ignore_errors=True)
        from report import render

        md, targets = render(self.results)
        self.results["targets"] = targets
        os.makedirs(RESULTS, exist_ok=True)
        # latest.* only from a run of every phase with every peer; a partial run gets its own name.
        name = self.args.out or (
            "latest" if not skip and not self.args.only else f"partial-{time.strftime('%Y-%m-%d')}"
        )
        with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
            f.write(md)
        print(md)
        c = self.results["cleanup"]
        if c["left"]:
            print(f"cleanup: {len(c['left'])} process(es) could not be ended: {', '.join(c['left'])}")
        else:
            print(
                f"cleanup: all {c['processes_seen']} processes ended ({c['killed_by_bench']} of them "
                "killed by the bench, see the Cleanup section)"
            )
        print(f"results: {os.path.join(RESULTS, name + '.md')} and {name}.json")
        return 0


def auto_layer() -> str:
    """The process layer attachdaemon chooses here without the variable (or with the bench's)."""
    try:
        from attachdaemon_core.osproc import layer

        return layer.choose()
    except Exception as exc:  # an attachdaemon without the layer choice, or a bad variable
        return f"unknown ({exc!r})"


def poll_interval() -> float | None:
    """The portable layer's exit-polling interval where there is no kqueue (None if unknown)."""
    try:
        from attachdaemon_core.osproc import exitwatch

        return float(exitwatch.POLL_INTERVAL)
    except Exception:
        return None


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("attachdaemon", "pyuwsgi", "supervisor", "circus", "gunicorn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes instead of about 10")
    ap.add_argument(
        "--only",
        help="comma-separated peers to run beside attachdaemon (uwsgi, supervisord, circus, "
        f"{PORTABLE}: its portable layer, timed in crash_and_smart and portable_idle)",
    )
    ap.add_argument(
        "--skip",
        help="comma-separated phases to skip (probe_self, crash_and_smart, "
        "crash_loop, idle_small, portable_idle, scale, reload, gunicorn_boot, exec_form)",
    )
    ap.add_argument(
        "--out",
        help="results name under bench/results/ (default: latest for a full run, partial-DATE otherwise)",
    )
    args = ap.parse_args()
    bench = Bench(args)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    return bench.run(sys.argv[1:])


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.modules.setdefault("bench", sys.modules["__main__"])  # exec_form imports this module by name
    sys.exit(main())
