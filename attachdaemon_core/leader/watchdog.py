"""The holder's second line of defence: a tiny process that empties the leader daemon's session.

The holder starts it once (``python -m attachdaemon_core.leader watchdog --fd N``) in its own
session, so a SIGSTOP of the holder (or of the holder's process group) does not stop it, and
talks to it over an AF_UNIX SOCK_STREAM socket pair, one JSON object a line, each saying how
many file descriptors came with it (``"nfds"``; framing and fd passing in
:mod:`attachdaemon_core.leader.channel`, the same on every POSIX system). The messages:

* ``{"op":"session","sid":S,"starttime":T,"stop_signal":15}``: the daemon's session;
* ``{"op":"deadline","stop_at":M,"kill_at":M}``: monotonic times (CLOCK_MONOTONIC is shared by
  every process of the host): stop_signal to the group at stop_at, SIGKILL to every member of
  the session from kill_at until it is empty;
* ``{"op":"hold"}`` with file descriptors attached (SCM_RIGHTS): the lock's connection or flock
  fd, kept open so that the lock outlives a crashed holder until the session is empty;
* ``{"op":"drop"}``: close the held fds; ``{"op":"clear"}``: forget session and deadlines.

On EOF (the holder died, or exited), and on a frame it cannot read (then it no longer knows the
deadlines nor which fd is which), it SIGKILLs the session's members until none is left, closes
the held fds (which frees a PostgreSQL or file lock) and exits. It never touches the engine, so
it cannot hang on it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from attachdaemon_core.leader.channel import Channel, socket_pair
from attachdaemon_core.osproc.layer import LIVE

POLL = 0.02


def session_is_ours(sid: int, starttime: int) -> bool:
    """Whether session ``sid`` is still the one whose leader started at ``starttime``.

    A dead (or zombie) leader still pins its pid while any member uses it as session id, so
    then every remaining member is of the recorded session; a live process with that pid and
    another start time means the old session is empty and the number was reused.
    """
    st = LIVE.stat(sid)
    if st is None or st.state in ("Z", "X"):
        return True
    return st.starttime == starttime


def signal_session_group(sid: int, starttime: int, sig: int) -> bool:
    if not session_is_ours(sid, starttime):
        return False
    return LIVE.signal_group(sid, sig)


def kill_session_members(sid: int, starttime: int) -> int:
    """SIGKILL every live member of the recorded session once; how many remain alive."""
    if not session_is_ours(sid, starttime):
        return 0
    LIVE.kill_session(sid, signal.SIGKILL)
    return len(LIVE.session_members(sid))


def empty_session(sid: int, starttime: int, limit: float) -> bool:
    """SIGKILL the session's members until none is left (or ``limit`` seconds pass)."""
    end = time.monotonic() + limit
    while kill_session_members(sid, starttime):
        if time.monotonic() >= end:
            return False
        time.sleep(POLL)
    return True


class Watchdog:
    def __init__(self, chan: Channel):
        self.chan = chan
        self.session: tuple[int, int, int] | None = None
        self.stop_at: float | None = None
        self.kill_at: float | None = None
        self.stop_sent = False
        self.fds: list[int] = []

    def _drop_fds(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _clear(self) -> None:
        self.session = None
        self.stop_at = self.kill_at = None
        self.stop_sent = False

    def handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg.get("op")
        if op == "session":
            self.session = (int(msg["sid"]), int(msg["starttime"]), int(msg.get("stop_signal", 15)))
            self.stop_sent = False
        elif op == "deadline":
            self.stop_at = float(msg["stop_at"]) if msg.get("stop_at") is not None else None
            self.kill_at = float(msg["kill_at"]) if msg.get("kill_at") is not None else None
            self.stop_sent = False
        elif op == "hold":
            self._drop_fds()
            self.fds = list(fds)
            fds = []
        elif op == "drop":
            self._drop_fds()
        elif op == "clear":
            self._clear()
        for fd in fds:  # fds attached to anything but "hold"
            os.close(fd)

    def tick(self) -> float | None:
        """Act on due deadlines; seconds until the next one (None: nothing scheduled)."""
        if self.session is None:
            return None
        sid, start, sig = self.session
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at:
            if kill_session_members(sid, start) == 0:
                self._clear()
                return None
            return POLL
        if self.stop_at is not None and now >= self.stop_at and not self.stop_sent:
            signal_session_group(sid, start, sig)
            self.stop_sent = True
        due = [t for t in (self.stop_at if not self.stop_sent else None, self.kill_at) if t is not None]
        return max(0.0, min(due) - now) if due else None

    def run(self) -> int:
        while self.chan.over is None:
            timeout = self.tick()
            try:
                ready, _, _ = select.select([self.chan], [], [], timeout)
            except InterruptedError:
                continue
            if ready:
                for msg, fds in self.chan.receive():
                    self.handle(msg, fds)
        # EOF, or a frame it cannot read: the holder can no longer be followed.
        if self.session is not None:
            sid, start, _sig = self.session
            empty_session(sid, start, limit=30.0)
        self._drop_fds()
        return 0


def start() -> tuple[subprocess.Popen[bytes], Channel]:
    """Start the watchdog in its own session; the holder's end of the channel (non-blocking)."""
    mine, theirs = socket_pair()
    with theirs:
        proc = subprocess.Popen(
            [sys.executable, "-m", "attachdaemon_core.leader", "watchdog", "--fd", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    return proc, Channel(mine)


def main(fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    chan = Channel(socket.socket(fileno=fd))
    try:
        return Watchdog(chan).run()
    finally:
        chan.close()
