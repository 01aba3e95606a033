"""The supervisor's own files: the state file a respawned supervisor takes back, written
atomically, and its log (stderr and ``supervisor.log``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import Any

from attachdaemon_core.engine.logs import private_file
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.osproc import proc

log = logging.getLogger("attachdaemon")

STATE_FILE = "state.json"
LOG_FILE = "supervisor.log"


def atomic_json(path: str, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically, through a new 0600 file with an unpredictable name
    (O_EXCL|O_NOFOLLOW: never a file or symlink someone put there first)."""
    tmp = f"{path}.{os.urandom(8).hex()}.tmp"
    data = json.dumps(obj).encode()  # dumps, not dump: the C encoder
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_previous(runtime_dir: str) -> dict[str, Any] | None:
    """The state a previous supervisor of this boot left, if any."""
    try:
        with open(os.path.join(runtime_dir, STATE_FILE)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("boot_id") != proc.boot_id():
        return None
    return state


def empty_previous_sessions(state: dict[str, Any], os_: RealOS) -> None:
    """Kill what is left in the attached sessions the previous supervisor recorded."""
    for sid, starttime in state.get("attached_sessions", []):
        leader = os_.stat(int(sid))
        if leader is None or leader.starttime == starttime or leader.sid == sid:
            n = os_.kill_session(int(sid))
            if n:
                log.info("emptied session %d of a previous supervisor's daemon (%d killed)", sid, n)


def configure_logging(runtime_dir: str) -> None:
    """Log lines go to the server's stderr and to <runtime>/supervisor.log."""
    root = logging.getLogger("attachdaemon")
    root.setLevel(logging.DEBUG if os.environ.get("ATTACHDAEMON_DEBUG") else logging.INFO)
    fmt = logging.Formatter(f"attachdaemon[{os.getpid()}]: %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    with contextlib.suppress(OSError):
        path = os.path.join(runtime_dir, LOG_FILE)
        private_file(path)
        fh = logging.FileHandler(path)
        fh.setFormatter(logging.Formatter("%(asctime)s " + f"[{os.getpid()}] %(message)s"))
        root.addHandler(fh)


def reopen_log_files() -> None:
    """Point file handlers at a fresh file (after the runtime directory was recreated)."""
    for handler in logging.getLogger("attachdaemon").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                with contextlib.suppress(OSError):
                    private_file(handler.baseFilename)
                handler.stream = handler._open()
            finally:
                handler.release()
