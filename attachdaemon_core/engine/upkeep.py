"""Upkeep of the daemons' files: touch files (a change restarts the daemon) and log files
(rotated every ``ROTATE_EVERY`` seconds; a full filesystem is said in status)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from attachdaemon_core.engine.daemon import Daemon
from attachdaemon_core.engine.logs import rotate_if_needed
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.states import State
from attachdaemon_core.spec.model import DaemonSpec

log = logging.getLogger("attachdaemon")

ROTATE_EVERY = 30.0
LOW_DISK_BYTES = 64 * 1024


def mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


class Upkeep:
    """Touch files and log rotation for the daemons in ``daemons``."""

    def __init__(
        self,
        daemons: Mapping[str, Daemon],
        *,
        timers: Timers,
        log_path: Callable[[DaemonSpec], str],
        watch_touch: Callable[[set[str]], None],
        restart: Callable[[Daemon], None],
        final: Callable[[], bool],
    ) -> None:
        self.daemons = daemons
        self.timers = timers
        self.log_path = log_path
        self.watch_touch = watch_touch
        self.restart = restart
        self.final = final
        self.rotate_timer: Timer | None = None

    def declarations_changed(self) -> None:
        self.update_touch()
        self.update_rotate_timer()

    # ------------------------------------------------------------------ touch
    def update_touch(self) -> None:
        """Record touch files' mtimes and have the watcher report their changes."""
        for d in self.daemons.values():
            seen = d.runtime.touch_mtimes
            for path in d.spec.touch:
                seen.setdefault(path, mtime(path))
        self.watch_touch({p for d in self.daemons.values() for p in d.spec.touch})

    def check_touch(self) -> None:
        for d in list(self.daemons.values()):
            seen = d.runtime.touch_mtimes
            changed = []
            for path in d.spec.touch:
                now = mtime(path)
                if path in seen and seen[path] != now:
                    changed.append(path)
                seen[path] = now
            if changed and d.state in (State.RUNNING, State.STARTING) and not self.final():
                log.info("daemon %r: %s changed; restarting it", d.name, changed[0])
                self.restart(d)

    # ------------------------------------------------------------------ log files
    def update_rotate_timer(self) -> None:
        wanted = any(d.spec.log not in ("prefix", "raw") for d in self.daemons.values())
        if wanted and self.rotate_timer is None:
            self.rotate_timer = self.timers.call_later(ROTATE_EVERY, self._rotate)

    def _rotate(self) -> None:
        self.rotate_timer = None
        for d in self.daemons.values():
            if d.spec.log not in ("prefix", "raw"):
                rotate_if_needed(self.log_path(d.spec), d.spec.log_max_bytes, d.spec.log_backups)
                problem = self.log_space_problem(d)
                if problem:
                    log.warning("daemon %r: %s", d.name, problem)
        self.update_rotate_timer()

    def log_space_problem(self, d: Daemon) -> str | None:
        """A file-logged daemon whose log filesystem is (nearly) full: said in status."""
        if d.spec.log in ("prefix", "raw"):
            return None
        path = self.log_path(d.spec)
        try:
            st = os.statvfs(os.path.dirname(path))
        except OSError:
            return None
        free = st.f_bavail * st.f_frsize
        if free >= LOW_DISK_BYTES:
            return None
        return f"log file {path} is on a full filesystem ({free} bytes free); its output is being lost"
