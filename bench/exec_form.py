"""The "exec form": every system timed from the exec of the command a user types.

``attachdaemon --config f.toml run`` beside ``uwsgi --ini u.ini``, ``supervisord -n -c s.conf``
and ``circusd c.ini``, each started by the bench's reaper (fork + exec, about 1 ms, the same for
every system; the clock starts just before that fork). Measured, medians over repetitions:

- exec → first daemon running, N=1;
- exec → all running, N=100;
- stop → every process of the tree gone, N=100: the stop signal to the command's process
  (SIGTERM; uWSGI: SIGINT, its stop signal — SIGTERM reloads it unless ``die-on-term``), then
  pidfds on every process under the reaper (command, guard, supervisor, workers, daemons);
- PSS of the whole tree at N=50: the sum of ``/proc/PID/smaps_rollup`` Pss over every process
  under the reaper that is not a daemon (attachdaemon: ``run`` + guard + supervisor; uWSGI: master
  + its one worker; supervisord; circusd), with the per-process split.

"Running" is the C probe's announce on the bench FIFO, as in the other phases.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench import MS, PROBE, VENV_BIN, Instance, cmdline, descendants, log, proc_children, stats

if TYPE_CHECKING:
    from bench import Bench

STOP_CAP = 10.0  # seconds; uWSGI stops attached daemons one per second, so it is censored here


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string for these paths


class AttachDaemonRun(Instance):
    """``attachdaemon --config f.toml run``: the console script a user types."""

    system = "attachdaemon"

    def start(self) -> None:
        path = os.path.join(self.dir, "f.toml")
        lines = [f"runtime_dir = {toml_str(os.path.join(self.dir, 'rt'))}", ""]
        for name, mode in self.daemons:
            argv = self.argv(name, mode)
            lines += [f"[daemons.{name}]", "command = [" + ", ".join(toml_str(a) for a in argv) + "]", ""]
        with open(path, "w") as f:
            f.write("\n".join(lines))
        env = dict(os.environ)
        env.pop("ATTACH_DAEMONS_RUNTIME_DIR", None)
        self.t_start = time.monotonic_ns()
        self.reaper = self.bench.tracker.spawn(
            [os.path.join(VENV_BIN, "attachdaemon"), "--config", path, "run"],
            self.logfile,
            env=env,
            cwd=self.dir,
        )

    def command_pid(self) -> int | None:
        kids = proc_children(self.reaper.pid) if self.reaper is not None else []
        for k in kids:
            if " run" in cmdline(k) and "attachdaemon" in cmdline(k):
                return k
        return None

    def supervisor_pid(self) -> int | None:
        return self.command_pid()

    def stop(self) -> None:
        pid = self.command_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)


def role(system: str, pid: int, top: bool) -> str:
    c = cmdline(pid)
    if system == "attachdaemon":
        # The supervisor is a fork of the guard (same cmdline): their /proc/PID/comm tells them apart.
        comm = ""
        with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        if comm in ("ad-guard", "ad-supervisor"):
            return comm[3:]
        return "run" if " run" in c else c[:40]
    if system == "uwsgi":
        return "uwsgi master" if top else "uwsgi worker"
    if "circus import stats" in c:
        return "circusd-stats"
    return os.path.basename(c.split()[1] if c.startswith(("/", "python")) and len(c.split()) > 1 else c)[:40]


class ExecForm:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.reps = (
            {"first_1": 3, "all_100": 2, "pss_50": 1}
            if bench.quick
            else {"first_1": 7, "all_100": 5, "pss_50": 3}
        )

    def instance(self, system: str, label: str, n: int) -> Instance:
        daemons = [(f"d{i}", "idle") for i in range(n)]
        if system == "attachdaemon":
            inst: Instance = AttachDaemonRun(self.bench, label, daemons)
            self.bench.instances.append(inst)
            return inst
        return self.bench.new(system, label, daemons)

    def launch(self, system: str, label: str, n: int) -> tuple[Instance, dict[str, tuple[int, int]]] | None:
        inst = self.instance(system, label, n)
        try:
            inst.start()
        except Exception as exc:
            self.bench.note(f"exec form, {system}: could not start: {exc}")
            return None
        tags = list(inst.tags.values())
        got = self.bench.ann.wait_all(tags, inst.t_start, 60)
        if len(got) < n:
            self.bench.note(
                f"exec form, {system}: only {len(got)}/{n} announced in 60 s (log {inst.logfile})"
            )
            self.bench.close(inst)
            return None
        return inst, got

    def tree(self, inst: Instance, daemons: set[int]) -> list[int]:
        assert inst.reaper is not None
        pids = descendants(inst.reaper.pid)
        for p in pids:
            self.bench.tracker.note(p)
        return [p for p in pids if p not in daemons]

    def pss(self, inst: Instance, daemons: set[int]) -> dict[str, Any]:
        per = []
        assert inst.reaper is not None
        top = set(proc_children(inst.reaper.pid))
        for pid in self.tree(inst, daemons):
            kb = 0
            with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        kb = int(line.split()[1])
            per.append((role(inst.system, pid, pid in top), kb))
        return {"total_mb": sum(kb for _, kb in per) / 1024, "processes": [[r, kb / 1024] for r, kb in per]}

    def stop_all_gone(self, inst: Instance) -> float | None:
        """Stop signal → every process under the reaper gone (ms), or None past STOP_CAP."""
        assert inst.reaper is not None
        fds = []
        for pid in descendants(inst.reaper.pid):
            self.bench.tracker.note(pid)
            with contextlib.suppress(OSError):
                fds.append(os.pidfd_open(pid))
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        t0 = time.monotonic_ns()
        inst.stop()
        remaining = len(fds)
        end = time.monotonic() + STOP_CAP
        while remaining and time.monotonic() < end:
            for fd, _ in poller.poll(max(1, int((end - time.monotonic()) * 1000))):
                poller.unregister(fd)
                remaining -= 1
        t1 = time.monotonic_ns()
        for fd in fds:
            os.close(fd)
        return None if remaining else (t1 - t0) / MS

    def run(self) -> None:
        b = self.bench
        systems = list(b.available)
        first: dict[str, list[float]] = {s: [] for s in systems}
        allr: dict[str, list[float]] = {s: [] for s in systems}
        stops: dict[str, list[float]] = {s: [] for s in systems}
        censored: dict[str, int] = {s: 0 for s in systems}
        pss: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
        # One untimed start per system first: the page cache then holds every interpreter and module.
        for s in systems:
            hit = self.launch(s, "xw", 1)
            if hit:
                b.close(hit[0])
        for rep in range(self.reps["first_1"]):
            for s in systems:
                hit = self.launch(s, f"x1r{rep}", 1)
                if hit:
                    inst, got = hit
                    first[s].append((min(ns for _, ns in got.values()) - inst.t_start) / MS)
                    b.close(inst)
            log(
                f"exec form N=1 rep {rep + 1}: "
                + ", ".join(f"{s} {v[-1]:.0f} ms" for s, v in first.items() if v)
            )
        for rep in range(self.reps["all_100"]):
            for s in systems:
                hit = self.launch(s, f"x100r{rep}", 100)
                if not hit:
                    continue
                inst, got = hit
                allr[s].append((max(ns for _, ns in got.values()) - inst.t_start) / MS)
                time.sleep(0.3)  # let the supervisor settle (write its state file, etc.)
                v = self.stop_all_gone(inst)
                if v is None:
                    censored[s] += 1
                else:
                    stops[s].append(v)
                b.close(inst)
                log(
                    f"exec form N=100 rep {rep + 1} {s}: all running {allr[s][-1]:.0f} ms, stop "
                    + (f"{v:.0f} ms" if v is not None else f"> {STOP_CAP:.0f} s")
                )
        for rep in range(self.reps["pss_50"]):
            for s in systems:
                hit = self.launch(s, f"x50r{rep}", 50)
                if not hit:
                    continue
                inst, got = hit
                time.sleep(1.0)
                pss[s].append(self.pss(inst, {pid for pid, _ in got.values()}))
                b.close(inst)
                log(f"exec form PSS N=50 {s}: {pss[s][-1]['total_mb']:.1f} MB {pss[s][-1]['processes']}")
        for s in systems:
            b.put("x_first_1", s, stats(first[s]))
            b.put("x_all_100", s, stats(allr[s]))
            if censored[s] and not stops[s]:
                b.put(
                    "x_stop_100",
                    s,
                    {
                        "value_ms": None,
                        "censored": True,
                        "text": f">{STOP_CAP:.0f} s ({censored[s]} of {censored[s]} runs)",
                    },
                )
            else:
                st = stats(stops[s])
                if st is not None and censored[s]:
                    st["timeouts"] = censored[s]
                b.put("x_stop_100", s, st)
            if pss[s]:
                totals = [p["total_mb"] for p in pss[s]]
                b.put(
                    "x_pss_50",
                    s,
                    {
                        "n": len(totals),
                        "min": min(totals),
                        "median": statistics.median(totals),
                        "p95": max(totals),
                        "max": max(totals),
                        "processes": pss[s][len(pss[s]) // 2]["processes"],
                    },
                )
        b.results["exec_form"] = {
            "probe": PROBE,
            "stop_cap_s": STOP_CAP,
            "how": "t0 just before the bench forks its reaper, which execs the command; "
            "running = the C probe's announce; stop = SIGTERM (uWSGI SIGINT) to the command's process",
        }
