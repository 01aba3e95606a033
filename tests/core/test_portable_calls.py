"""The calls that stand in for Linux-only ones on macOS and the BSDs (issue 14), run on Linux:
``osproc.fds.pipe`` both with ``pipe2`` and without it (as on macOS)."""

from __future__ import annotations

import fcntl
import os

import pytest

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
