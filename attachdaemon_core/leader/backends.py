"""Backend selection, and the ``file`` backend (flock; the single-host default).

``open_lock(name, backend, ...)`` picks the backend from the resolved ``backend`` string (see
:func:`attachdaemon_core.leader.rules.backend_kind`): ``file``, ``postgresql://…`` /
``postgres://…`` or a libpq key=value DSN (``django:ALIAS`` is resolved by the caller into one),
``redis://…`` / ``rediss://…``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import stat
import time
from typing import Any

from attachdaemon_core.leader.base import BackendUnavailable, LeaderLock, Lease, LeaseLost
from attachdaemon_core.leader.rules import POSTGRES, REDIS, backend_kind


def open_lock(
    name: str,
    backend: str,
    *,
    lease: float,
    renew: float,
    holder_info: dict[str, Any],
) -> LeaderLock:
    """The :class:`LeaderLock` for ``name`` in ``backend``; nothing connects until first used."""
    kind = backend_kind(backend)
    if kind == POSTGRES:
        from attachdaemon_core.leader.pg_backend import PostgresLock

        return PostgresLock(name, backend, lease=lease, renew=renew, holder_info=holder_info)
    if kind == REDIS:
        from attachdaemon_core.leader.redis_backend import RedisLock

        return RedisLock(name, backend, lease=lease, renew=renew, holder_info=holder_info)
    return FileLock(name, lease=lease, holder_info=holder_info)


def file_lock_path(name: str) -> str:
    """``<runtime.user_root()>/locks/<sha256(name)[:16]>.lock``: shared by every runtime dir."""
    from attachdaemon_core.osproc.paths import user_root

    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return os.path.join(user_root(), "locks", f"{digest}.lock")


class FileLock:
    """``flock(LOCK_EX)`` on a per-user file; the kernel releases it when the holder dies.

    The file holds JSON: the holder's info, a token counting acquisitions (monotonic while the
    file lives) and ``released`` (set by a clean release). Renewal checks the path still names
    the locked inode (a deleted or replaced file would let a second holder in).
    """

    state_may_be_lost = False
    fencing = True
    connection_bound_release = True
    handover_grace = 0.0

    def __init__(self, name: str, *, lease: float, holder_info: dict[str, Any], path: str | None = None):
        self.name = name
        self.lease = lease
        self.info = dict(holder_info)
        self.path = path or file_lock_path(name)
        self._fd: int | None = None

    # --- helpers ---

    def _ensure_dir(self) -> None:
        from attachdaemon_core.osproc.paths import RuntimeDirError, ensure_dir

        try:
            ensure_dir(os.path.dirname(os.path.dirname(self.path)))
            ensure_dir(os.path.dirname(self.path))
        except RuntimeDirError as exc:
            raise BackendUnavailable(str(exc)) from None

    def _open(self) -> int:
        self._ensure_dir()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open lock file {self.path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise BackendUnavailable(f"lock file {self.path} is not a regular file of ours; refused")
        return fd

    def _same_file(self, fd: int) -> bool:
        try:
            a, b = os.fstat(fd), os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            raw = os.pread(fd, 4096, 0)
            data = json.loads(raw.decode() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _write(fd: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, raw, 0)

    # --- interface ---

    def try_acquire(self) -> Lease | None:
        if self._fd is not None:
            raise RuntimeError("already holding the lock")
        sent = time.monotonic()
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not self._same_file(fd):  # unlinked between open and flock: try again later
            os.close(fd)
            return None
        old = self._read(fd)
        prev = old.get("token")
        token = (prev if isinstance(prev, int) and prev >= 0 else 0) + 1
        released = bool(old.get("released", True)) if old else True
        data = {**self.info, "token": token, "since": time.time(), "released": False}
        data.setdefault("host", socket.gethostname())
        data.setdefault("pid", os.getpid())
        self._write(fd, data)
        self._fd = fd
        return Lease(token=token, sent_at=sent, clean_handover=True, previous_released=released)

    def renew(self, lease: Lease) -> Lease:
        sent = time.monotonic()
        fd = self._fd
        if fd is None:
            raise LeaseLost("not holding the lock")
        if not self._same_file(fd):
            self._drop()
            raise LeaseLost(f"lock file {self.path} was removed or replaced")
        if self._read(fd).get("token") != lease.token:
            self._drop()
            raise LeaseLost("lock file token changed")
        return Lease(lease.token, sent, lease.clean_handover, lease.previous_released)

    def release(self, lease: Lease) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            if self._same_file(fd) and self._read(fd).get("token") == lease.token:
                data = self._read(fd)
                data["released"] = True
                self._write(fd, data)
        except OSError:
            pass
        self._drop()

    def _drop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                data = self._read(fd)  # held by someone (maybe us)
                return {k: data.get(k) for k in ("host", "pid", "since", "token")}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        self._drop()

    def lock_fds(self) -> list[int]:
        return [self._fd] if self._fd is not None else []

    def watch_fd(self) -> int | None:
        return None

    def abort(self) -> None:
        return None
