"""Leader daemons under real supervisors: several "hosts" (separate runtime directories, each
with its own owner and supervisor) declare one daemon with ``leader``; exactly one runs it, the
others are on standby, and the daemons' running intervals never overlap across failovers."""

from __future__ import annotations

import datetime
import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.model import DaemonSpec, LeaderSpec
from tests.helpers.harness import PY, Sandbox, assert_stays, wait_for
from tests.helpers.import_blocker import blocker_dir, pythonpath_with
from tests.leader.conftest import record, unique_name

BEAT = str(Path(__file__).with_name("beat_daemon.py"))
LEASE, RENEW, STOP = 4.0, 0.5, 0.5


class Fleet:
    def __init__(self, tmp: Path, backend: str) -> None:
        self.tmp = tmp
        self.backend = backend
        self.lock = unique_name("sup")
        self.beats = tmp / "beats.log"
        self.hosts: dict[str, Sandbox] = {}
        self.owners: dict[str, object] = {}

    def spec(self, host: str) -> DaemonSpec:
        # One label per process ($$ is the daemon's own pid, exec keeps it): one interval per run.
        cmd = ("sh", "-c", f"exec {PY} {BEAT} {self.beats} {host}-$$")
        leader = LeaderSpec(lock=self.lock, backend=self.backend, lease=LEASE, renew=RENEW)
        return DaemonSpec(name="beat", command=cmd, leader=leader, stop_timeout=STOP, shell=True)

    def add(self, host: str) -> Sandbox:
        (self.tmp / host).mkdir()
        box = Sandbox(self.tmp / host)
        self.hosts[host] = box
        owner = box.owner()
        self.owners[host] = owner
        box.join(owner, [self.spec(host)])
        return box

    def states(self) -> dict[str, str]:
        out = {}
        for name, box in self.hosts.items():
            try:
                out[name] = box.daemon("beat")["state"]
            except Exception:
                out[name] = "down"
        return out

    def leader(self, timeout: float = 15) -> str:
        def one() -> str | None:
            running = [h for h, s in self.states().items() if s == "running"]
            return running[0] if len(running) == 1 else None

        return wait_for(one, timeout, "exactly one host running the daemon", interval=0.02)

    def intervals(self) -> list[tuple[float, float, str]]:
        spans: dict[str, list[float]] = {}
        for line in self.beats.read_text().splitlines() if self.beats.exists() else []:
            label, _what, t, *_ = line.split()
            span = spans.setdefault(label, [float(t), float(t)])
            span[1] = max(span[1], float(t))
        return sorted((a, b, k) for k, (a, b) in spans.items())

    def assert_no_overlap(self) -> None:
        for (a1, b1, k1), (a2, _b2, k2) in itertools.pairwise(self.intervals()):
            assert a2 > b1, f"overlap: {k1} ran {a1:.3f}-{b1:.3f}, {k2} started at {a2:.3f}"

    def handover(self, old: str, t0: float, timeout: float = 15) -> float:
        new = wait_for(lambda: (h := self.leader(timeout)) != old and h, timeout, "a new leader")

        def first_beat() -> float | None:
            starts = [a for a, _b, k in self.intervals() if k.startswith(f"{new}-") and a > t0]
            return min(starts) if starts else None

        return wait_for(first_beat, 5, f"{new}'s daemon beating") - t0


@pytest.fixture(params=["file", "postgres", "redis"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    if request.param == "file":
        backend = "file"
    elif request.param == "postgres":
        dsn = dict(p.split("=", 1) for p in request.getfixturevalue("pg_dsn").split())
        backend = f"postgresql://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"
    else:
        backend = request.getfixturevalue("redis_url")
    f = Fleet(tmp_path, backend)
    yield f
    problems = []
    for box in f.hosts.values():
        problems += box.cleanup()
    assert not problems, problems
    f.assert_no_overlap()


def test_three_hosts__exactly_one_runs_the_daemon_others_standby(fleet: Fleet) -> None:
    for h in ("h1", "h2", "h3"):
        fleet.add(h)
    leader = fleet.leader()
    wait_for(lambda: sorted(fleet.states().values()) == ["running", "standby", "standby"], 10, "standby")
    box = fleet.hosts[leader]
    info = box.daemon("beat")["leader"]
    assert info["lock"] == fleet.lock and info["role"] == "leader"
    follower = next(b for h, b in fleet.hosts.items() if h != leader)
    f_info = wait_for(lambda: (i := follower.daemon("beat")["leader"])["holder"] and i, 10, "holder shown")
    assert f_info["role"] == "follower"
    tokens = {line.split()[3] for line in fleet.beats.read_text().splitlines() if len(line.split()) > 3}
    if fleet.backend != "file" or tokens:
        assert all(t.isdigit() for t in tokens), tokens  # ATTACHDAEMON_LEADER_TOKEN reached the daemon


def test_graceful_stop_of_the_holder__handover_within_stop_time_plus_1s(fleet: Fleet) -> None:
    for h in ("h1", "h2"):
        fleet.add(h)
    old = fleet.leader()
    t0 = time.monotonic()
    assert runtime.release(fleet.hosts[old].runtime_dir, fleet.owners[old].pid, wait=10)  # type: ignore[attr-defined]
    took = fleet.handover(old, t0)
    record(f"supervised graceful handover ({fleet.backend.split(':')[0]}) s", round(took, 3))
    assert took <= STOP + 1.0 + 0.5, took


def test_holder_supervisor_sigkilled__fails_over_without_overlap(fleet: Fleet) -> None:
    for h in ("h1", "h2"):
        fleet.add(h)
    old = fleet.leader()
    sup = fleet.hosts[old].supervisor_pid()
    t0 = time.monotonic()
    os.kill(sup, signal.SIGKILL)
    # The guard brings the supervisor back; the lock may land on either host, never on both.
    wait_for(lambda: sorted(fleet.states().values()) == ["running", "standby"], 15, "one leader again")
    fleet.assert_no_overlap()
    record(
        f"supervised supervisor-kill recovery ({fleet.backend.split(':')[0]}) s",
        round(time.monotonic() - t0, 3),
    )


def test_holder_owner_sigkilled__the_other_host_takes_over(fleet: Fleet) -> None:
    for h in ("h1", "h2"):
        fleet.add(h)
    old = fleet.leader()
    t0 = time.monotonic()
    fleet.owners[old].kill(signal.SIGKILL)  # type: ignore[attr-defined]
    took = fleet.handover(old, t0)
    record(f"supervised owner-kill failover ({fleet.backend.split(':')[0]}) s", round(took, 3))
    assert took < LEASE + 1.0, took


def test_lead_and_unlead_hooks_run_on_gaining_and_after_losing(tmp_path: Path) -> None:
    marks = tmp_path / "marks.log"
    hook = f"echo $1 $ATTACHDAEMON_LEADER_LOCK >> {marks}"
    fleet = Fleet(tmp_path, "file")
    base = fleet.spec

    def spec(host: str) -> DaemonSpec:
        s = base(host)
        assert s.leader is not None
        leader = LeaderSpec(lock=s.leader.lock, backend="file", lease=LEASE, renew=RENEW,
                            on_lead=("sh", "-c", hook, "-", f"lead-{host}"),
                            on_unlead=("sh", "-c", hook, "-", f"unlead-{host}"))  # fmt: skip
        return DaemonSpec(name="beat", command=s.command, leader=leader, stop_timeout=STOP, shell=True)

    fleet.spec = spec  # type: ignore[method-assign]
    try:
        for h in ("h1", "h2"):
            fleet.add(h)
        old = fleet.leader()
        wait_for(lambda: marks.exists() and f"lead-{old} {fleet.lock}" in marks.read_text(), 5, "lead hook")
        # A stop by command gives the lock up: the other host leads, and our unlead hook ran after the reap.
        fleet.hosts[old].call("stop", names=["beat"])
        new = wait_for(lambda: (h := fleet.leader()) != old and h, 10, "handover")
        text = wait_for(lambda: f"lead-{new}" in marks.read_text() and marks.read_text(), 5, "new lead hook")
        assert text.splitlines()[0] == f"lead-{old} {fleet.lock}"
    finally:
        problems = [p for box in fleet.hosts.values() for p in box.cleanup()]
        assert not problems, problems
        fleet.assert_no_overlap()


def test_engine_unreachable_at_start__standby_with_the_reason_rest_of_the_app_unaffected(
    tmp_path: Path,
) -> None:
    (tmp_path / "h").mkdir()
    box = Sandbox(tmp_path / "h")
    try:
        leader = LeaderSpec(lock=unique_name("down"), backend="postgresql://postgres:secret@127.0.0.1:1/x",
                            lease=LEASE, renew=RENEW)  # fmt: skip
        beat = DaemonSpec(name="beat", command=("sleep", "1000"), leader=leader, stop_timeout=STOP)
        box.join(box.owner(), [beat, DaemonSpec(name="web", command=("sleep", "1000"))])
        d = wait_for(lambda: (x := box.daemon("beat"))["error"] and x, 15, "the reason in status")
        assert d["state"] == "standby" and d["pid"] is None
        assert "engine unreachable" in d["error"] and "secret" not in d["error"]
        assert box.running("web")
        assert "secret" not in box.log_text()
    finally:
        assert not box.cleanup()


HOLDER_DEATH = re.compile(
    r"^(\S+ \S+) \[\d+\] daemon 'beat': its lock holder \(pid \d+\) exited with status 2\b.*"
    r"a new holder starts in (\d+(?:\.\d+)?)s",
    re.MULTILINE,
)


def _holder_deaths(log: str) -> list[tuple[float, float]]:
    """(time, announced restart delay) of each death of beat's holder in the supervisor log."""
    return [
        (datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f").timestamp(), float(delay))
        for t, delay in HOLDER_DEATH.findall(log)
    ]


def test_holder_dies__status_and_log_say_why__restarted_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py is missing for the supervisor (and so for its holders): the holder cannot run.
    blocker = blocker_dir(tmp_path / "blocker", "redis", announce=True)
    monkeypatch.setenv("PYTHONPATH", pythonpath_with(blocker, os.environ.get("PYTHONPATH")))
    (tmp_path / "h").mkdir()
    box = Sandbox(tmp_path / "h")
    try:
        leader = LeaderSpec(lock=unique_name("dies"), backend="redis://:hunter2@127.0.0.1:1/0",
                            lease=LEASE, renew=RENEW)  # fmt: skip
        beat = DaemonSpec(name="beat", command=("sleep", "1000"), leader=leader, stop_timeout=STOP)
        box.join(box.owner(), [beat, DaemonSpec(name="web", command=("sleep", "1000"))])
        d = wait_for(lambda: "exited with status 2" in ((x := box.daemon("beat"))["error"] or "") and x,
                     15, "the holder's death in status")  # fmt: skip
        assert d["state"] == "standby" and d["pid"] is None
        error = d["error"]
        assert "pip install 'attachdaemon[redis]'" in error, error
        assert "import blocker: refusing redis" in error, error  # its last stderr lines
        assert box.running("web")
        deaths = wait_for(lambda: len(found := _holder_deaths(box.log_text())) >= 3 and found, 20,
                          f"three deaths of the holder in the log:\n{box.log_text()}")  # fmt: skip
        (t1, delay1), (t2, delay2), (t3, delay3) = deaths[:3]
        assert delay1 < delay2 < delay3, deaths
        assert t3 - t2 > t2 - t1 + 0.5, deaths  # not once a second forever: it backs off
        log = box.log_text()
        assert "import blocker: refusing redis" in log and "pip install 'attachdaemon[redis]'" in log
        assert "hunter2" not in log and "hunter2" not in error
    finally:
        assert not box.cleanup()


def _holder_pid(box: Sandbox) -> int:
    sup = box.supervisor_pid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = proc.cmdline(int(entry))
            st = proc.stat(int(entry))
            if st is not None and st.ppid == sup and "attachdaemon_core.leader" in cmd and "hold" in cmd:
                return int(entry)
    raise AssertionError("no lock holder under the supervisor")


def test_holder_frozen_longer_than_the_lease__daemon_stopped_in_time_no_resume_on_sigcont(
    fleet: Fleet,
) -> None:
    for h in ("h1", "h2"):
        fleet.add(h)
    old = fleet.leader()
    holder = _holder_pid(fleet.hosts[old])
    t0 = time.monotonic()
    os.kill(holder, signal.SIGSTOP)  # nobody renews for this host now, not even its supervisor
    try:
        took = fleet.handover(old, t0, timeout=LEASE + 5)
        old_last = max(b for _a, b, k in fleet.intervals() if k.startswith(f"{old}-"))
        record(f"supervised holder frozen: old daemon stopped after ({fleet.backend.split(':')[0]}) s",
               round(old_last - t0, 3))  # fmt: skip
        assert old_last - t0 < LEASE, "the frozen holder's daemon outlived the lease"
        if fleet.backend == "file":
            pytest.fail("a frozen flock holder keeps the lock: no other host may take over")
        assert took <= LEASE + 1.0, took
    except AssertionError:
        if fleet.backend != "file":
            raise
        # file backend: the kernel lock stays with the frozen process; the watchdog still stopped
        # the daemon in time, and nobody else runs it meanwhile (no overlap, checked at teardown).
        old_runs = [b for _a, b, k in fleet.intervals() if k.startswith(f"{old}-")]
        assert max(old_runs) - t0 < LEASE
    finally:
        os.kill(holder, signal.SIGCONT)
    if fleet.backend != "file":
        wait_for(lambda: fleet.hosts[old].daemon("beat")["state"] == "standby", LEASE + 5, "old host standby")
        # A quiet window: the thawed holder must not take the lock back.
        assert_stays(lambda: fleet.states()[old] == "standby", 0.5, "old host standby", show=fleet.states)


def test_pg_terminate_backend_of_the_lock_connection__daemon_stopped_other_host_takes_over(
    tmp_path: Path, pg_dsn: str
) -> None:
    from tests.leader.test_holder import _pg_terminate

    dsn = dict(p.split("=", 1) for p in pg_dsn.split())
    fleet = Fleet(tmp_path, f"postgresql://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}")
    try:
        for h in ("h1", "h2"):
            fleet.add(h)
        old = fleet.leader()
        t0 = time.monotonic()
        assert _pg_terminate(pg_dsn, fleet.lock) == 1
        took = fleet.handover(old, t0)
        record("supervised pg_terminate_backend failover (postgresql) s", round(took, 3))
        assert took < LEASE, took
        fleet.assert_no_overlap()
    finally:
        problems = [p for box in fleet.hosts.values() for p in box.cleanup()]
        assert not problems, problems
        fleet.assert_no_overlap()
