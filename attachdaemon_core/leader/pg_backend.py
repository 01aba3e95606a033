"""The ``postgres`` backend: a session advisory lock on the holder's own direct connection.

* Key: 63 bits of sha256(name) (:func:`~.base.lock_key63`); ``pg_try_advisory_lock(key)``.
* The connection is autocommit, never pooled, with ``application_name =
  attachdaemon:<name>:<host>:<pid>`` (truncated by the server to 63 bytes), libpq
  ``connect_timeout``/keepalives/``tcp_user_timeout`` tight, and the session's
  ``idle_session_timeout`` = lease: the server ends a silent holder's session (and so frees
  the lock) after one lease, even when the holder's kernel still ACKs (research §6 E1).
* Renewal = one query that checks ``pg_locks`` still shows the lock under ``pg_backend_pid()``.
* Fencing token and handover record: the row of ``attachdaemon.leader_lock`` for the key
  (schema and table created if missing, under a transaction-level advisory lock). The token is
  the previous row's token + 1, written while holding the advisory lock, so it is monotonic
  and durable. The row also keeps ``pg_postmaster_start_time()`` of the acquisition and a
  ``released`` flag: a new holder that finds the previous holder unreleased AND the postmaster
  restarted since reports ``clean_handover=False`` (lock state may have been lost with the
  restart), and the holder waits out the lock delay. Without privileges for the table, tokens
  are None and every acquisition is treated as unclean (lock delay each time).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from typing import Any

import psycopg

from attachdaemon_core.leader.base import (
    BackendUnavailable,
    Lease,
    LeaseLost,
    LeaseUnknown,
    lock_key63,
    one_line,
)

SCHEMA = "attachdaemon"
TABLE = f"{SCHEMA}.leader_lock"
DDL_LOCK_KEY = lock_key63("attachdaemon:ddl")
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    key bigint PRIMARY KEY,
    name text NOT NULL,
    token bigint NOT NULL,
    info jsonb NOT NULL DEFAULT '{{}}',
    backend_pid integer,
    since timestamptz NOT NULL DEFAULT now(),
    postmaster_start timestamptz,
    released boolean NOT NULL DEFAULT false
)
"""
LOCK_HELD_SQL = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1
"""
HOLDER_SQL = """
SELECT a.pid, a.application_name, extract(epoch FROM a.backend_start)::float8
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1
"""


class PostgresLock:
    state_may_be_lost = True
    fencing = True
    connection_bound_release = True
    handover_grace = 0.5  # an alive previous holder sees its socket turn readable at once

    def __init__(self, name: str, dsn: str, *, lease: float, renew: float, holder_info: dict[str, Any]):
        self.name = name
        self._dsn = dsn
        self.lease = lease
        self.renew_period = renew
        self.info = dict(holder_info)
        self.info.setdefault("host", socket.gethostname())
        self.info.setdefault("pid", os.getpid())
        self.key = lock_key63(name)
        self._classid, self._objid = self.key >> 32, self.key & 0xFFFFFFFF
        self._conn: psycopg.Connection[Any] | None = None
        self._fd_lock = threading.Lock()
        self._sock_fd: int | None = None
        self._have_table = False
        self._pm_start: Any = None

    def __repr__(self) -> str:  # never show the DSN
        return f"<PostgresLock {self.name!r}>"

    # --- connection ---

    def _connect(self) -> psycopg.Connection[Any]:
        app = f"attachdaemon:{self.name}:{self.info['host']}:{self.info['pid']}"
        connect_timeout = max(2, math.ceil(min(self.renew_period, 5.0)))
        user_timeout_ms = int(max(1.0, min(self.renew_period, 5.0)) * 1000)
        try:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                application_name=app[:63],
                connect_timeout=connect_timeout,
                keepalives=1,
                keepalives_idle=max(1, int(self.renew_period)),
                keepalives_interval=1,
                keepalives_count=2,
                tcp_user_timeout=user_timeout_ms,
            )
        except Exception as exc:
            raise BackendUnavailable(one_line(exc, self._dsn)) from None
        try:
            version = conn.info.server_version
            lease_ms = str(int(self.lease * 1000))
            settings = [
                ("statement_timeout", str(int(max(1.0, min(self.renew_period, 5.0)) * 1000))),
                ("lock_timeout", str(int(max(1.0, min(self.renew_period, 5.0)) * 1000))),
                ("tcp_keepalives_idle", str(max(1, int(self.renew_period)))),
                ("tcp_keepalives_interval", "1"),
                ("tcp_keepalives_count", "2"),
            ]
            if version >= 120000:
                settings.append(("tcp_user_timeout", str(user_timeout_ms)))
            if version >= 140000:
                settings.append(("idle_session_timeout", lease_ms))
            for key, value in settings:
                conn.execute("SELECT set_config(%s, %s, false)", [key, value])
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
            self._pm_start = row[0] if row else None
            self._have_table = self._ensure_table(conn)
        except Exception as exc:
            conn.close()
            raise BackendUnavailable(one_line(exc, self._dsn)) from None
        with self._fd_lock:
            self._conn = conn
            self._sock_fd = conn.pgconn.socket
        return conn

    @staticmethod
    def _ensure_table(conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE]).fetchone()
        if row and row[0]:
            return True
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK_KEY])
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(DDL)
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True

    def _get(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        return self._connect()

    def _drop(self) -> None:
        with self._fd_lock:
            conn, self._conn, self._sock_fd = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # --- interface ---

    def try_acquire(self) -> Lease | None:
        fresh = self._conn is None
        for attempt in (1, 2):
            conn = self._get()
            sent = time.monotonic()
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
                if not row or not row[0]:
                    return None
                held = conn.execute(LOCK_HELD_SQL, [self._classid, self._objid]).fetchone()
                if not held or held[0] != 1:
                    raise BackendUnavailable("the advisory lock is not visible in pg_locks (a pooler?)")
                return self._record(conn, sent)
            except psycopg.OperationalError as exc:
                self._drop()
                if attempt == 2 or fresh:
                    raise BackendUnavailable(one_line(exc, self._dsn)) from None
                # a stale connection (idle_session_timeout while following): reconnect once
            except psycopg.Error as exc:
                self._drop()
                raise BackendUnavailable(one_line(exc, self._dsn)) from None
        return None

    def _record(self, conn: psycopg.Connection[Any], sent: float) -> Lease:
        if not self._have_table:
            return Lease(token=None, sent_at=sent, clean_handover=False, previous_released=False)
        prev = conn.execute(
            "SELECT token, released, postmaster_start FROM attachdaemon.leader_lock WHERE key = %s",
            [self.key],
        ).fetchone()
        row = conn.execute(
            """INSERT INTO attachdaemon.leader_lock AS t
                    (key, name, token, info, backend_pid, since, postmaster_start, released)
                VALUES (%s, %s, 1, %s, pg_backend_pid(), now(), pg_postmaster_start_time(), false)
                ON CONFLICT (key) DO UPDATE SET token = t.token + 1, name = excluded.name,
                    info = excluded.info, backend_pid = excluded.backend_pid, since = excluded.since,
                    postmaster_start = excluded.postmaster_start, released = false
                RETURNING token""",
            [self.key, self.name, json.dumps(self.info)],
        ).fetchone()
        token = int(row[0]) if row else None
        if prev is None:
            return Lease(token=token, sent_at=sent, clean_handover=True, previous_released=True)
        released = bool(prev[1])
        restarted = prev[2] != self._pm_start
        return Lease(
            token=token,
            sent_at=sent,
            clean_handover=released or not restarted,
            previous_released=released,
        )

    def renew(self, lease: Lease) -> Lease:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            raise LeaseLost("the lock connection is gone")
        sent = time.monotonic()
        try:
            row = conn.execute(LOCK_HELD_SQL, [self._classid, self._objid]).fetchone()
        except psycopg.OperationalError as exc:
            if conn.broken or conn.closed:
                self._drop()
                raise LeaseLost(f"lock session ended: {one_line(exc, self._dsn)}") from None
            raise LeaseUnknown(one_line(exc, self._dsn)) from None
        except psycopg.Error as exc:
            if conn.broken or conn.closed:
                self._drop()
                raise LeaseLost(f"lock session ended: {one_line(exc, self._dsn)}") from None
            raise LeaseUnknown(one_line(exc, self._dsn)) from None
        if not row or row[0] != 1:
            raise LeaseLost("pg_locks no longer shows the advisory lock in our session")
        return Lease(lease.token, sent, lease.clean_handover, lease.previous_released)

    def release(self, lease: Lease) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return
        try:
            held = conn.execute(LOCK_HELD_SQL, [self._classid, self._objid]).fetchone()
            if not held or held[0] != 1:
                return
            if self._have_table and lease.token is not None:
                conn.execute(
                    "UPDATE attachdaemon.leader_lock SET released = true WHERE key = %s AND token = %s",
                    [self.key, lease.token],
                )
            conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        except psycopg.Error:
            self._drop()  # closing the session releases the lock anyway

    def holder(self) -> dict[str, Any] | None:
        try:
            conn = self._get()
            row = conn.execute(HOLDER_SQL, [self._classid, self._objid]).fetchone()
            if row is None:
                return None
            pid, app, started = row
            result: dict[str, Any] = {"backend_pid": pid, "application_name": app}
            if self._have_table:
                rec = conn.execute(
                    "SELECT token, info, extract(epoch FROM since)::float8, backend_pid"
                    " FROM attachdaemon.leader_lock"
                    " WHERE key = %s",
                    [self.key],
                ).fetchone()
                if rec is not None and rec[3] == pid:
                    info = rec[1] if isinstance(rec[1], dict) else {}
                    result.update(host=info.get("host"), pid=info.get("pid"), since=rec[2], token=int(rec[0]))
                    return result
            parts = str(app).split(":")
            host = parts[-2] if len(parts) >= 4 else None
            hpid = int(parts[-1]) if len(parts) >= 4 and parts[-1].isdigit() else None
            result.update(host=host, pid=hpid, since=started, token=None)
            return result
        except psycopg.Error as exc:
            self._drop()
            raise BackendUnavailable(one_line(exc, self._dsn)) from None

    def close(self) -> None:
        self._drop()

    def lock_fds(self) -> list[int]:
        with self._fd_lock:
            return [self._sock_fd] if self._sock_fd is not None else []

    def watch_fd(self) -> int | None:
        with self._fd_lock:
            return self._sock_fd

    def abort(self) -> None:
        """Shut the socket down under a blocked call (any thread): the call fails at once."""
        with self._fd_lock:
            fd = self._sock_fd
            if fd is None:
                return
            try:
                dup = socket.socket(fileno=os.dup(fd))
            except OSError:
                return
            with dup, contextlib.suppress(OSError):
                dup.shutdown(socket.SHUT_RDWR)
