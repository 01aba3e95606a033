"""The lock-holder process against real engines: contention, crash failover, forced loss,
pauses, engine restart and unreachable engines. Zero overlap is proved with beat_daemon.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.harness import assert_stays
from tests.leader.conftest import LEASE, MARGIN, ROOT, Fleet, PrivateRedis, make_fleet, record

BACKENDS = ["file", "postgres", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return "file"


def kind(backend: str) -> str:
    return "file" if backend == "file" else ("redis" if backend.startswith("redis") else "postgres")


@pytest.fixture
def fleet_factory(tmp_path: Path, lock_env: dict[str, str]) -> Iterator[Any]:
    fleets: list[Fleet] = []

    def make(backend: str, tag: str) -> Fleet:
        sub = tmp_path / f"fleet{len(fleets)}"
        sub.mkdir()
        f = make_fleet(sub, backend, lock_env, tag)
        fleets.append(f)
        return f

    yield make
    for f in fleets:
        f.close()


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def test_contention_exactly_one(backend: str, fleet_factory: Any) -> None:
    fleet = fleet_factory(backend, "contend")
    for label in ("a", "b", "c"):
        fleet.add(label)
    leader = fleet.leader()
    # Several retry rounds of the followers: none acquires.
    assert_stays(lambda: len(fleet.acquired()) == 1, 1.5, "one acquisition", show=fleet.acquired)
    followers = [c for c in fleet.members if c is not leader]
    for c in followers:
        infos = fleet.wait_for(
            lambda c=c: [e for e in c.find("event", "info") if e["role"] == "follower" and e["holder"]],
            5,
            "a follower info naming the holder",
        )
        assert infos[-1]["holder"]["token"] == leader.acquired()[0]["token"]
    assert len(fleet.intervals()) == 1
    fleet.assert_no_overlap()


def test_holder_sigkill_fails_over(backend: str, fleet_factory: Any) -> None:
    fleet = fleet_factory(backend, "sigkill")
    fleet.add("a")
    leader = fleet.leader()
    fleet.add("b")
    other = fleet.members[1]
    fleet.wait_for(lambda: other.find("event", "info"), 5, "b following")
    assert_stays(lambda: not other.acquired(), 0.3, "b not acquiring a held lock", show=other.events)
    t0 = time.monotonic()
    os.kill(leader.holder_pid, signal.SIGKILL)
    got = fleet.wait_for(other.acquired, LEASE + 3, "b acquiring")
    took = got[0]["t"] - t0
    limit = LEASE + 1.0 if kind(backend) == "redis" else 2.0
    fleet.wait_for(lambda: len(fleet.intervals()) == 2, 5, "b's daemon")
    spans = fleet.assert_no_overlap()
    record(f"{kind(backend)}.holder_sigkill.acquire_ms", ms(took))
    record(f"{kind(backend)}.holder_sigkill.daemon_gap_ms", ms(spans[1][1] - spans[0][2]))
    record(f"{kind(backend)}.holder_sigkill.old_daemon_killed_ms", ms(spans[0][2] - t0))
    assert took <= limit, f"failover took {took:.2f}s (limit {limit}s)"


def test_graceful_handover(backend: str, fleet_factory: Any) -> None:
    fleet = fleet_factory(backend, "handover")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: b.find("event", "info"), 5, "b following")
    t0 = time.monotonic()
    os.kill(a.proc.pid, signal.SIGUSR1)
    got = fleet.wait_for(b.acquired, 5, "b acquiring after the release")
    assert got[0]["clean_handover"] is True and got[0]["lock_delay"] == 0
    fleet.wait_for(lambda: a.find("event", "released"), 5, "a released")
    spans = fleet.assert_no_overlap()
    fleet.wait_for(lambda: len(fleet.intervals()) == 2, 5, "b's daemon")
    spans = fleet.assert_no_overlap()
    record(f"{kind(backend)}.graceful_handover.acquire_ms", ms(got[0]["t"] - t0))
    record(f"{kind(backend)}.graceful_handover.daemon_gap_ms", ms(spans[1][1] - spans[0][2]))
    assert got[0]["token"] > a.acquired()[0]["token"]


def test_holder_sigstop_longer_than_lease(backend: str, fleet_factory: Any) -> None:
    """Nobody runs the holder's loop: its watchdog still empties the session by t_s+L-m."""
    fleet = fleet_factory(backend, "sigstop")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: b.find("event", "info"), 5, "b following")
    pid = a.holder_pid
    fleet.stopped_pids.append(pid)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    fleet.wait_for(lambda: not fleet.daemon_alive("a-"), LEASE, "a's daemon to be stopped")
    killed_after = time.monotonic() - t0
    assert killed_after <= LEASE - MARGIN + 0.2
    if kind(backend) != "file":  # a stopped holder keeps a flock: no failover until SIGCONT
        got = fleet.wait_for(b.acquired, LEASE + 3, "b acquiring")
        record(f"{kind(backend)}.holder_sigstop.acquire_ms", ms(got[0]["t"] - t0))
    # A quiet window with a still frozen (and b leading): a's daemon stays stopped.
    assert_stays(lambda: not fleet.daemon_alive("a-"), 0.5, "a's daemon stopped", show=fleet.intervals)
    os.kill(pid, signal.SIGCONT)
    fleet.wait_for(lambda: a.find("event", "lost"), 5, "a reporting lost after SIGCONT")
    if kind(backend) == "file":
        fleet.wait_for(b.acquired, 5, "b acquiring after a's release")
    # A quiet window after the thaw: a must not come back as a second leader.
    assert_stays(lambda: len(a.acquired()) == 1, 0.5, "a acquired once only", show=a.events)
    fleet.assert_no_overlap()
    record(f"{kind(backend)}.holder_sigstop.daemon_killed_ms", ms(killed_after))


def _pg_terminate(dsn: str, name: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity"
            " WHERE application_name LIKE %s"
            " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
            [f"attachdaemon:{name}:%"],
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("stop_parent", [False, True], ids=["parent-running", "parent-sigstopped"])
def test_pg_terminate_backend_stops_daemon_first(pg_dsn: str, fleet_factory: Any, stop_parent: bool) -> None:
    fleet = fleet_factory(pg_dsn, "terminate")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: b.find("event", "info"), 5, "b following")
    if stop_parent:  # the supervisor's loop is frozen: the holder must act alone
        fleet.stopped_pids.append(a.proc.pid)
        os.kill(a.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    assert _pg_terminate(pg_dsn, fleet.name) == 1
    got = fleet.wait_for(b.acquired, 5, "b acquiring")
    fleet.wait_for(lambda: len(fleet.intervals()) == 2, 5, "b's daemon")
    spans = fleet.assert_no_overlap()
    if stop_parent:
        os.kill(a.proc.pid, signal.SIGCONT)
    fleet.wait_for(lambda: a.find("event", "lost"), 5, "a's lost event")
    tag = "parent_stopped" if stop_parent else "parent_running"
    record(f"postgres.terminate_backend.{tag}.acquire_ms", ms(got[0]["t"] - t0))
    record(f"postgres.terminate_backend.{tag}.daemon_gap_ms", ms(spans[1][1] - spans[0][2]))
    record(f"postgres.terminate_backend.{tag}.old_daemon_killed_ms", ms(spans[0][2] - t0))


def test_redis_client_kill_keeps_leadership(redis_url: str, fleet_factory: Any) -> None:
    import redis

    fleet = fleet_factory(redis_url, "clientkill")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: b.find("event", "info"), 5, "b following")
    with redis.Redis.from_url(redis_url) as client:
        killed = 0
        for entry in client.client_list():
            if entry.get("name", "").startswith(f"attachdaemon:{fleet.name}:"):
                killed += client.client_kill_filter(_id=entry["id"])
    assert killed >= 1
    # Past the lease: renewals reconnected and kept the key.
    assert_stays(lambda: not a.find("event", "lost"), LEASE + 1, "a holding", show=a.events)
    assert len(fleet.acquired()) == 1
    assert fleet.daemon_alive("a-", within=0.5)
    fleet.assert_no_overlap()


def test_redis_restart_new_holder_waits_lock_delay(private_redis: PrivateRedis, fleet_factory: Any) -> None:
    fleet = fleet_factory(private_redis.url, "restart")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: [e for e in b.find("event", "info") if e.get("holder")], 5, "b seeing a")
    t0 = time.monotonic()
    private_redis.kill()
    private_redis.start()  # empty: no persistence
    fleet.wait_for(lambda: a.find("event", "lost"), LEASE, "a losing the lock")
    got = fleet.wait_for(lambda: [e for e in fleet.acquired() if e["t"] > t0], 2 * LEASE + 3, "a new leader")
    assert got[0]["clean_handover"] is False
    assert got[0]["lock_delay"] >= LEASE
    fleet.wait_for(lambda: len(fleet.intervals()) == 2, 5, "the new daemon")
    spans = fleet.assert_no_overlap()
    record("redis.restart.new_acquired_ms", ms(got[0]["t"] - t0))
    record("redis.restart.daemon_gap_ms", ms(spans[1][1] - spans[0][2]))


@pytest.mark.parametrize("which", ["postgres", "redis"])
def test_unreachable_engine_reports_error_without_dsn(
    which: str, fleet_factory: Any, lock_env: dict[str, str]
) -> None:
    from tests.helpers.servers import free_port

    port = free_port()
    secret = "s3cretPW"
    url = (
        f"postgresql://someone:{secret}@127.0.0.1:{port}/db"
        if which == "postgres"
        else f"redis://someone:{secret}@127.0.0.1:{port}/0"
    )
    fleet = fleet_factory(url, "unreachable")
    a = fleet.add("a")
    errors = fleet.wait_for(lambda: a.find("event", "error"), 8, "an error event")
    ps = subprocess.run(["ps", "-eo", "args"], check=False, capture_output=True, text=True).stdout
    assert_stays(lambda: not fleet.acquired(), 1.0, "nobody acquiring", show=fleet.acquired)
    text = json.dumps(a.events())
    assert secret not in text and "someone" not in text
    assert secret not in ps
    assert errors[0]["reason"].startswith("engine unreachable: ")
    infos = a.find("event", "info")
    assert infos and infos[0]["role"] == "unknown"


def test_unsafe_arithmetic_is_refused(lock_env: dict[str, str]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "attachdaemon_core.leader",
            "hold",
            "--name",
            "x",
            "--backend",
            "file",
            "--lease",
            "3",
            "--renew",
            "1",
            "--stop-timeout",
            "1",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=lock_env,
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert out.returncode == 2
    event = json.loads(out.stdout.splitlines()[0])
    assert event["event"] == "error" and "lease 3s is too short" in event["reason"]


def test_parent_eof_kills_session_and_releases(backend: str, fleet_factory: Any) -> None:
    """The supervisor dies (SIGKILL): the holder sees EOF, kills the daemon, releases."""
    fleet = fleet_factory(backend, "eof")
    a = fleet.add("a")
    assert fleet.leader() is a
    b = fleet.add("b")
    fleet.wait_for(lambda: b.find("event", "info"), 5, "b following")
    t0 = time.monotonic()
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait()
    got = fleet.wait_for(b.acquired, 5, "b acquiring after a's release")
    assert got[0]["lock_delay"] == 0
    fleet.wait_for(lambda: len(fleet.intervals()) == 2, 5, "b's daemon")
    spans = fleet.assert_no_overlap()
    record(f"{kind(backend)}.parent_sigkill.acquire_ms", ms(got[0]["t"] - t0))
    record(f"{kind(backend)}.parent_sigkill.daemon_gap_ms", ms(spans[1][1] - spans[0][2]))


def fd_targets(pid: int, lowest: int = 0) -> set[str]:
    """What ``pid``'s fds from ``lowest`` up point at: a path, or ``socket:[inode]``."""
    found = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        if int(name) >= lowest:
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/{pid}/fd/{name}"))
    return found


def test_watchdog_sigkill_is_noticed_and_it_is_restarted_with_the_whole_state(
    backend: str, fleet_factory: Any
) -> None:
    """The watchdog is SIGKILLed while a leads: the holder sees EOF on the channel, starts a new
    one and sends it everything again. The new one holds the lock's fd (the file and PostgreSQL
    backends), and, the holder then SIGSTOPped, empties the session by t_s+L-m on its own: so the
    session and the deadline reached it too."""
    fleet = fleet_factory(backend, "wdkill")
    a = fleet.add("a")
    assert fleet.leader() is a
    holder = a.holder_pid
    [old] = fleet.wait_for(a.watchdog_pids, 5, "a's watchdog")
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    noticed = fleet.wait_for(
        lambda: a.find("reason", "the watchdog process died; restarted"), 5, "the holder noticing"
    )
    [new] = fleet.wait_for(lambda: [p for p in a.watchdog_pids() if p != old], 5, "a new watchdog")
    assert old not in a.watchdog_pids()  # reaped by the holder
    record(f"{kind(backend)}.watchdog_sigkill.restart_ms", ms(noticed[0]["t"] - t0))
    # Its fds past stdin, stdout and stderr: its end of the channel, and the lock's fd if any.
    if kind(backend) == "redis":
        assert len(fd_targets(new, lowest=3)) == 1  # the channel only: a Redis lock has no fd
    else:
        shared = fleet.wait_for(
            lambda: fd_targets(new, lowest=3) & fd_targets(holder), 5, "the lock's fd in the new watchdog"
        )
        [target] = shared  # the holder's end of the channel is another socket than the watchdog's
        assert target.startswith("socket:") if kind(backend) == "postgres" else target.endswith(".lock")
    assert fleet.daemon_alive("a-", within=1.0)
    fleet.stopped_pids.append(holder)
    t1 = time.monotonic()
    os.kill(holder, signal.SIGSTOP)
    fleet.wait_for(lambda: not fleet.daemon_alive("a-"), LEASE, "a's daemon stopped by the new watchdog")
    assert time.monotonic() - t1 <= LEASE - MARGIN + 0.2
    os.kill(holder, signal.SIGCONT)
