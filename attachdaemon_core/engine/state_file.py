"""The supervisor's own files: the state file a respawned supervisor takes back (``StateFile``),
written atomically, and its log (stderr and ``supervisor.log``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from attachdaemon_core.engine import log_format
from attachdaemon_core.engine.logs import private_file
from attachdaemon_core.engine.os_seam import RealOS
from attachdaemon_core.engine.owners import Owners

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


def read_previous(runtime_dir: str, os_: RealOS) -> dict[str, Any] | None:
    """The state a previous supervisor of this boot left, if any."""
    try:
        with open(os.path.join(runtime_dir, STATE_FILE)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("boot_id") != os_.boot_id():
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


class StateFile:
    """What a respawned supervisor takes back: its owners, the daemons held by command, the
    attached sessions to empty and the smart daemons its launches produced. Marked stale by
    ``save`` whenever one changes; the loop writes it once per turn (after that turn's spawns)."""

    def __init__(
        self,
        runtime_dir: str,
        *,
        os: RealOS,
        owners: Owners,
        held: set[str],
        attached_sessions: Mapping[int, int],
        smart_known: MutableMapping[str, tuple[int, int]],
        final: Callable[[], bool],
    ) -> None:
        self.runtime_dir = runtime_dir
        self.os = os
        self.owners = owners
        self.held = held  # (these containers are shared with the parts: changed in place)
        self.attached_sessions = attached_sessions
        self.smart_known = smart_known
        self.final = final
        self.dirty = False

    def save(self) -> None:
        """Mark the state file stale."""
        self.dirty = True

    def write(self) -> None:
        self.dirty = False
        state = {
            "boot_id": self.os.boot_id(),
            "owners": self.owners.records(),
            "held": sorted(self.held),
            "attached_sessions": [[sid, st] for sid, st in self.attached_sessions.items()],
            "smart": [[path, pid, st] for path, (pid, st) in self.smart_known.items()],
            "final": self.final(),
        }
        with contextlib.suppress(OSError):
            atomic_json(os.path.join(self.runtime_dir, STATE_FILE), state)

    def restore(self) -> None:
        """After a crash: empty recorded attached sessions, take back live owners and their daemons."""
        state = read_previous(self.runtime_dir, self.os)
        if state is None:
            return
        empty_previous_sessions(state, self.os)
        self.held.clear()
        self.held.update(state.get("held", []))
        with contextlib.suppress(TypeError, ValueError):  # smart daemons our launches produced
            known = {str(p): (int(pid), int(st)) for p, pid, st in state.get("smart", [])}
            self.smart_known.clear()
            self.smart_known.update(known)
        if state.get("final"):
            return
        self.owners.take_back(state.get("owners", []))
        self.save()


def configure_logging(runtime_dir: str) -> None:
    """Log lines go to the server's stderr and to <runtime>/supervisor.log."""
    root = logging.getLogger("attachdaemon")
    root.setLevel(logging.DEBUG if os.environ.get("ATTACHDAEMON_DEBUG") else logging.INFO)
    to_stderr, to_file = log_format.formatters()  # text, or JSON lines (docs/monitoring.md)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(to_stderr)
    root.addHandler(stream)
    with contextlib.suppress(OSError):
        path = os.path.join(runtime_dir, LOG_FILE)
        private_file(path)
        fh = logging.FileHandler(path)
        fh.setFormatter(to_file)
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
