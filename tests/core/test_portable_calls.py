"""The calls that stand in for Linux-only ones on macOS and the BSDs (issue 14), run on Linux:
``osproc.fds.pipe`` both with ``pipe2`` and without it (as on macOS); the notify socket, which
refuses to listen where no sender can be known."""

from __future__ import annotations

import fcntl
import os
import selectors
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from attachdaemon_core.engine.notify import Notifier
from attachdaemon_core.osproc import fds

pytestmark = pytest.mark.unit


def flags(fd: int) -> tuple[bool, bool]:
    """(close-on-exec, non-blocking) of ``fd``."""
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC), not os.get_blocking(fd)


@pytest.mark.parametrize("has_pipe2", [True, False], ids=["pipe2", "no-pipe2"])
@pytest.mark.parametrize("nonblock", [False, True])
def test_pipe_is_close_on_exec_and_non_blocking_when_asked(
    monkeypatch: pytest.MonkeyPatch, has_pipe2: bool, nonblock: bool
) -> None:
    if not has_pipe2:
        monkeypatch.delattr(os, "pipe2")
    r, w = fds.pipe(nonblock=nonblock)
    try:
        assert flags(r) == flags(w) == (True, nonblock)
        assert not os.get_inheritable(r) and not os.get_inheritable(w)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
        if nonblock:
            with pytest.raises(BlockingIOError):
                os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)


def notifier(tmp_path: Path) -> Notifier:
    """A Notifier with nothing behind it: only its sockets are looked at."""
    limits = SimpleNamespace(daemons={}, timers=None, restart_because=None)
    prober = SimpleNamespace(report_ready=None)
    return Notifier(limits, prober, selectors.DefaultSelector(), str(tmp_path))  # type: ignore[arg-type]


def test_a_notify_socket_is_non_blocking_and_not_inherited(tmp_path: Path) -> None:
    n = notifier(tmp_path)
    try:
        n._listen("web")
        sock = n.socks["web"]
        assert not sock.getblocking() and not sock.get_inheritable()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED) == 1
    finally:
        n.close_all()


def test_without_so_passcred_notify_refuses_to_listen_and_says_what_to_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fail closed (macOS, the BSDs): a message whose sender cannot be known is never trusted."""
    monkeypatch.delattr(socket, "SO_PASSCRED")
    n = notifier(tmp_path)
    with pytest.raises(OSError, match=r"SO_PASSCRED.*another readiness check \(tcp, http"):
        n._listen("web")
    assert n.socks == {} and not (tmp_path / "notify").exists()
