"""The supervisor's runtime directory: its lock (one supervisor per directory), its index entry
(so ``status`` finds it), who may read it, and its recovery when logind or a cleaner removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable

from attachdaemon_core import __version__
from attachdaemon_core.control.server import ControlServer
from attachdaemon_core.engine.state_file import LOG_FILE, atomic_json, reopen_log_files
from attachdaemon_core.osproc.paths import (
    RuntimeDirError,
    open_for_traversal,
    private_subdir,
    short_digest,
    user_root,
)
from attachdaemon_core.spec.messages import error_text

log = logging.getLogger("attachdaemon")

LOCK_FILE = "lock"


class RuntimeDir:
    """One supervisor's runtime directory and the files it keeps there."""

    def __init__(self, path: str, control: ControlServer, *, started_at: float) -> None:
        self.path = path
        self.control = control
        self.started_at = started_at
        self.lock_fd = -1

    def acquire_lock(self) -> bool:
        lock_path = os.path.join(self.path, LOCK_FILE)
        self.lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = -1
            return False
        return True

    def write_index(self) -> None:
        info = {
            "pid": os.getpid(),
            "runtime_dir": self.path,
            "started_at": self.started_at,
            "version": __version__,
        }
        with contextlib.suppress(OSError, RuntimeDirError):
            atomic_json(os.path.join(self.path, "supervisor.json"), info)
            index = private_subdir("index")
            key = short_digest(self.path)
            atomic_json(os.path.join(index, f"{key}.json"), info)

    def allow_readers(self, uids: set[int]) -> None:
        """Let these uids read status and logs (gunicorn workers running as the app's user)."""
        new = uids - self.control.read_only_uids - {os.geteuid()}
        if not new:
            return
        self.control.read_only_uids |= new
        self.open_for_readers()
        log.info("uid(s) %s may read status and logs", ", ".join(map(str, sorted(new))))

    def open_for_readers(self) -> None:
        if not self.control.read_only_uids:
            return
        with contextlib.suppress(OSError):
            open_for_traversal(user_root())
            open_for_traversal(self.path)
            os.chmod(self.control.path, 0o666)  # noqa: S103 - who may talk is decided by peer credentials

    def sweep_control(self, now: float) -> None:
        """Close the control connections idle too long; listen again if the socket file vanished."""
        self.control.sweep(now)
        if self.control.socket_missing():
            log.warning("control socket vanished; listening again")
            with contextlib.suppress(OSError):
                os.makedirs(self.path, mode=0o700, exist_ok=True)
                self.control.close()
                self.control.listen()

    def recover(self, write_state: Callable[[], None]) -> None:
        """logind (or a cleaner) removed our runtime directory: recreate it, its lock and socket."""
        # Its log too: a removal in progress (logind's, rm -r) may take the log after a first recovery
        # reopened it, which would leave the supervisor logging into a deleted file.
        names = (LOCK_FILE, LOG_FILE)
        if os.path.exists(self.control.path) and all(
            os.path.exists(os.path.join(self.path, n)) for n in names
        ):
            return
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            reopen_log_files()
            log.warning("runtime directory %s or its files vanished; recreating them", self.path)
            old_lock = self.lock_fd
            if not self.acquire_lock():
                self.lock_fd = old_lock
                log.error("another supervisor took %s meanwhile", self.path)
            elif old_lock >= 0:
                os.close(old_lock)
            self.control.close()
            self.control.listen()
            self.open_for_readers()
            self.write_index()
            write_state()
        except OSError as exc:
            log.error("cannot recreate runtime directory %s: %s", self.path, error_text(exc))
