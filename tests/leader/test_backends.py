"""The LeaderLock backends, in-process, against the real engines (no holder process); the pure
rules they share are in test_rules.py."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.leader import BackendUnavailable, LeaseLost, lock_key63, open_lock
from attachdaemon_core.leader.backends import FileLock
from tests.helpers.servers import free_port
from tests.leader.conftest import unique_name

INFO = {"host": "test-host", "pid": 4242}


@pytest.fixture(params=["file", "postgres", "redis"])
def make_lock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    name = unique_name("unit")
    locks: list[Any] = []
    if request.param == "postgres":
        backend = str(request.getfixturevalue("pg_dsn"))
    elif request.param == "redis":
        backend = str(request.getfixturevalue("redis_url"))
    else:
        backend = "file"

    def make() -> Any:
        if backend == "file":
            lock: Any = FileLock(name, lease=4, holder_info=INFO, path=str(tmp_path / "locks" / "x.lock"))
            (tmp_path / "locks").mkdir(mode=0o700, exist_ok=True)
        else:
            lock = open_lock(name, backend, lease=4, renew=0.5, holder_info=INFO)
        locks.append(lock)
        return lock

    yield make
    for lock in locks:
        lock.close()


def test_exactly_one_then_clean_release(make_lock: Any) -> None:
    a, b, c = make_lock(), make_lock(), make_lock()
    la = a.try_acquire()
    assert la is not None and la.clean_handover
    assert b.try_acquire() is None and c.try_acquire() is None
    held = b.holder()
    assert held is not None and held["token"] == la.token and held["host"] == "test-host"
    la2 = a.renew(la)
    assert la2.sent_at >= la.sent_at and la2.token == la.token
    a.release(la2)
    a.release(la2)  # idempotent
    assert b.holder() is None
    lb = b.try_acquire()
    assert lb is not None and lb.token is not None and la.token is not None
    assert lb.token > la.token and lb.previous_released
    a.release(la2)  # a stale release must not free b's lock
    assert c.try_acquire() is None
    b.close()  # closing without release: PG/file free at once, Redis after the lease
    if not isinstance(b, FileLock) and type(b).__name__ == "RedisLock":
        return
    end = time.monotonic() + 2  # the server ends the closed session asynchronously
    while (lc := c.try_acquire()) is None and time.monotonic() < end:
        time.sleep(0.02)
    assert lc is not None and not lc.previous_released and lc.clean_handover


def test_file_lock_removed_is_lost(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir(mode=0o700)
    lock = FileLock("x", lease=4, holder_info=INFO, path=str(tmp_path / "locks" / "x.lock"))
    lease = lock.try_acquire()
    assert lease is not None
    os.unlink(lock.path)
    with pytest.raises(LeaseLost, match="removed or replaced"):
        lock.renew(lease)
    lock.close()


def test_postgres_restart_is_unclean_handover(pg_dsn: str) -> None:
    import psycopg

    name = unique_name("pgrestart")
    a = open_lock(name, pg_dsn, lease=4, renew=0.5, holder_info=INFO)
    b = open_lock(name, pg_dsn, lease=4, renew=0.5, holder_info=INFO)
    try:
        la = a.try_acquire()
        assert la is not None
        with psycopg.connect(pg_dsn, autocommit=True) as conn:  # as if PG restarted since
            conn.execute(
                "UPDATE attachdaemon.leader_lock SET postmaster_start = '2000-01-01' WHERE key = %s",
                [lock_key63(name)],
            )
        a.close()  # a vanished without releasing
        lb = b.try_acquire()
        assert lb is not None and lb.clean_handover is False and lb.token == (la.token or 0) + 1
    finally:
        a.close()
        b.close()


def test_postgres_terminated_session_is_lost(pg_dsn: str) -> None:
    import psycopg

    lock = open_lock(unique_name("pgterm"), pg_dsn, lease=4, renew=0.5, holder_info=INFO)
    try:
        lease = lock.try_acquire()
        assert lease is not None
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [lock.holder()["backend_pid"]])  # type: ignore[index]
        with pytest.raises(LeaseLost):
            lock.renew(lease)
    finally:
        lock.close()


def test_redis_wipe_is_detected_by_a_contender_that_saw_the_epoch(redis_url: str) -> None:
    import redis

    name = unique_name("wipe")
    a = open_lock(name, redis_url, lease=4, renew=0.5, holder_info=INFO)
    b = open_lock(name, redis_url, lease=4, renew=0.5, holder_info=INFO)
    fresh = open_lock(name, redis_url, lease=4, renew=0.5, holder_info=INFO)
    try:
        la = a.try_acquire()
        assert la is not None and b.holder() is not None  # b has seen the epoch
        with redis.Redis.from_url(redis_url) as client:
            client.delete(*[f"attachdaemon:leader:{name}{s}" for s in ("", ":epoch", ":released")])
        with pytest.raises(LeaseLost):
            a.renew(la)
        lb = b.try_acquire()
        assert lb is not None and lb.clean_handover is False
        b.release(lb)
        with redis.Redis.from_url(redis_url) as client:
            client.delete(*[f"attachdaemon:leader:{name}{s}" for s in ("", ":epoch", ":released")])
        lf = fresh.try_acquire()  # never saw an epoch: cannot tell (documented)
        assert lf is not None and lf.clean_handover is True
    finally:
        for lock in (a, b, fresh):
            lock.close()


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
def test_unreachable_is_dsn_free(scheme: str) -> None:
    url = f"{scheme}://user:hunter2@127.0.0.1:{free_port()}/0"
    lock = open_lock("x", url, lease=4, renew=0.5, holder_info=INFO)
    try:
        with pytest.raises(BackendUnavailable) as info:
            lock.try_acquire()
        assert "hunter2" not in str(info.value) and "user:" not in str(info.value)
        assert "hunter2" not in repr(lock)
    finally:
        lock.close()
