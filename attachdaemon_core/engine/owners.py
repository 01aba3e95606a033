"""The supervisor's owners: the server processes (gunicorn arbiters, Django/Flask processes)
that declared daemons. Each is watched by pidfd; the newest one's declarations are in force; when
the last owner goes, the final stop begins.

Composed into the supervisor: it receives the objects and callbacks it needs, nothing more.
"""

from __future__ import annotations

import functools
import logging
import selectors
import signal
from collections.abc import Callable
from typing import Any

from attachdaemon_core.control.server import CommandError
from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.engine.os_seam import RealOS

log = logging.getLogger("attachdaemon")


class Owner:
    __slots__ = ("decl", "pid", "pid1", "pidfd", "seq", "starttime")

    def __init__(
        self, pid: int, starttime: int, pidfd: int, seq: int, decl: dict[str, Any], pid1: bool = False
    ) -> None:
        self.pid = pid
        self.starttime = starttime
        self.pidfd = pidfd
        self.seq = seq
        self.decl = decl
        self.pid1 = pid1  # the owner is PID 1 of its pid namespace (a container's init)


class Owners:
    """Who owns the supervisor, in join order (``seq``): the newest declares."""

    def __init__(
        self,
        *,
        os: RealOS,
        selector: selectors.BaseSelector,
        timers: Timers,
        apply: Callable[..., None],
        final_stop: Callable[[bool], None],
        is_final: Callable[[], bool],
        save_state: Callable[[], None],
    ) -> None:
        self.os = os
        self.selector = selector
        self.timers = timers
        self.apply = apply  # apply(decl, reload=...)
        self.final_stop = final_stop  # final_stop(smart_too)
        self.is_final = is_final
        self.save_state = save_state
        self.by_pid: dict[int, Owner] = {}
        self.seq = 0
        self._no_owner_timer: Timer | None = None

    def expect_first(self, grace: float, on_none: Callable[[], None]) -> None:
        """A fresh supervisor with no owner: call ``on_none`` if none joins within ``grace`` seconds."""
        if self.by_pid:
            return

        def none_joined() -> None:
            self._no_owner_timer = None
            if not self.by_pid:
                log.info("no owner registered in %.0fs; exiting", grace)
                on_none()

        self._no_owner_timer = self.timers.call_later(grace, none_joined)

    def shut_down(self) -> None:
        """Ask every owner to shut the server down (SIGTERM; a control daemon gave up)."""
        for owner in list(self.by_pid.values()):
            self.os.pidfd_signal(owner.pidfd, signal.SIGTERM)

    def newest(self) -> Owner:
        return max(self.by_pid.values(), key=lambda o: o.seq)

    def _watch(self, owner: Owner) -> None:
        self.by_pid[owner.pid] = owner
        pid = owner.pid
        self.selector.register(owner.pidfd, selectors.EVENT_READ, lambda _m: self.remove(pid, why="exited"))

    def add(self, ident: dict[str, Any], decl: dict[str, Any], *, reload: bool = True) -> bool:
        """Register (or refresh) an owner; its declarations apply right after the answer. True
        when it is the first owner."""
        pid = int(ident["pid"])
        if self.is_final():
            raise CommandError("the supervisor is shutting down; try again once it has exited")
        st = self.os.stat(pid)
        if st is None or st.state in ("Z", "X"):
            raise CommandError(f"owner {pid} is not running")
        first = not self.by_pid
        existing = self.by_pid.get(pid)
        self.seq += 1
        if existing is not None:
            existing.decl = decl
            existing.seq = self.seq
        else:
            pidfd = self.os.pidfd_open(pid)
            if pidfd is None:
                self.seq -= 1
                raise CommandError(f"cannot watch owner {pid}")
            self._watch(Owner(pid, st.starttime, pidfd, self.seq, decl, bool(ident.get("pid1"))))
            n = len(self.by_pid)
            log.info("owner %d joined (%d owner%s)", pid, n, "s"[: n > 1])
        # Applied right after this answer is sent (same loop turn, before any later request), so
        # the host's on_starting is not held while daemons are spawned.
        self.timers.call_later(0.0, functools.partial(self.apply, decl, reload=reload and not first))
        self.save_state()
        if self._no_owner_timer is not None:
            self._no_owner_timer.cancel()
            self._no_owner_timer = None
        return first

    def reload(self, ident: dict[str, Any], decl: dict[str, Any], policies: bool) -> bool:
        """New declarations from a known owner (applied if it is the newest); False when the
        owner is unknown (the caller registers it instead)."""
        pid = int(ident["pid"])
        owner = self.by_pid.get(pid)
        if owner is None:
            return False
        owner.decl = decl
        if owner.seq == max(o.seq for o in self.by_pid.values()):
            if policies:
                log.info("reload from owner %d", pid)
            else:
                log.info(
                    "declarations refreshed by owner %d (not a reload: no on_reload policy applied)", pid
                )
            self.apply(decl, reload=policies)
        self.save_state()
        return True

    def remove(self, pid: int, *, why: str) -> None:
        owner = self.by_pid.pop(pid, None)
        if owner is None:
            return
        self.selector.unregister(owner.pidfd)
        self.os.close(owner.pidfd)
        newest = not self.by_pid or owner.seq > max(o.seq for o in self.by_pid.values())
        log.info("owner %d %s (%d left)", pid, why, len(self.by_pid))
        if not self.by_pid:
            self.final_stop(owner.pid1)
        elif newest:
            previous = self.newest()
            log.info("re-applying the declarations of owner %d", previous.pid)
            self.apply(previous.decl, reload=True)
        self.save_state()

    def take_back(self, recorded: list[dict[str, Any]]) -> None:
        """After a supervisor respawn: the recorded owners still alive (same start time) are
        ours again, and the newest one's declarations apply."""
        for o in sorted(recorded, key=lambda o: o["seq"]):
            pid = int(o["pid"])
            st = self.os.stat(pid)
            if st is None or st.starttime != o["starttime"] or st.state in ("Z", "X"):
                continue
            pidfd = self.os.pidfd_open(pid)
            if pidfd is None:
                continue
            self.seq += 1
            self._watch(Owner(pid, int(o["starttime"]), pidfd, self.seq, o["decl"]))
        if self.by_pid:
            log.info("took back %d owner(s) from the previous supervisor", len(self.by_pid))
            self.apply(self.newest().decl, reload=False)

    def records(self) -> list[dict[str, Any]]:
        """What the state file keeps of them."""
        return [
            {"pid": o.pid, "starttime": o.starttime, "seq": o.seq, "decl": o.decl}
            for o in self.by_pid.values()
        ]
