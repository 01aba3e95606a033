"""The calls that stand in for Linux-only ones on macOS and the BSDs (issue 14), run on Linux:
``osproc.fds.pipe`` both with ``pipe2`` and without it (as on macOS); the notify socket, which
refuses to listen where no sender can be known; the peer credentials of the control socket,
decoded per platform from byte strings laid out as each platform's headers declare."""

from __future__ import annotations

import fcntl
import functools
import os
import re
import selectors
import socket
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from attachdaemon_core.control import server
from attachdaemon_core.engine.notify import Notifier
from attachdaemon_core.osproc import fds, peercred

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


# ---------------------------------------------------------------- peer credentials
# Byte strings laid out by hand, field by field, as the headers cited in osproc/peercred.py
# declare them (offsets written out here, not taken from the module's structs).
def le32(n: int) -> bytes:
    return n.to_bytes(4, sys.byteorder, signed=n < 0)


def xucred(uid: int, groups: list[int], version: int = 0, ngroups: int | None = None) -> bytes:
    """macOS's struct xucred: cr_version @0, cr_uid @4, short cr_ngroups @8 (+2 padding),
    cr_groups[16] @12; 76 bytes."""
    n = len(groups) if ngroups is None else ngroups
    raw = le32(version) + le32(uid) + n.to_bytes(2, sys.byteorder) + b"\0\0"
    raw += b"".join(le32(g) for g in groups) + b"\0" * 4 * (16 - len(groups))
    assert len(raw) == 76
    return raw


def freebsd_xucred(uid: int, groups: list[int], pid: int) -> bytes:
    """FreeBSD's: the same, then union {void *; pid_t cr_pid} at the next pointer boundary."""
    pointer = struct.calcsize("P")
    at = 80 if pointer == 8 else 76
    return xucred(uid, groups).ljust(at, b"\0") + le32(pid) + b"\0" * (pointer - 4)


@pytest.mark.parametrize(
    ("platform", "kind"),
    [
        ("linux", "ucred"),
        ("darwin", "xucred"),
        ("freebsd14", "xucred+pid"),
        ("dragonfly6", "xucred+pid"),
        ("openbsd7", "sockpeercred"),
        ("netbsd10", "unpcbid"),
        ("win32", None),
        ("cygwin", None),
        ("sunos5", None),
    ],
)
def test_each_platform_has_its_layout_or_none(platform: str, kind: str | None) -> None:
    assert peercred.layout(platform) == kind


def test_linux_and_netbsd_put_the_pid_first_openbsd_the_uid() -> None:
    raw = le32(4321) + le32(1000) + le32(100)
    assert peercred.decode("ucred", raw) == (4321, 1000, 100)
    assert peercred.decode("unpcbid", raw) == (4321, 1000, 100)
    assert peercred.decode("sockpeercred", raw) == (100, 4321, 1000)  # uid, gid, pid
    big = le32(7) + (4_000_000_000).to_bytes(4, sys.byteorder) + le32(5)
    assert peercred.decode("ucred", big) == (7, 4_000_000_000, 5)  # uid_t is unsigned


def test_macos_xucred_gives_uid_and_first_group_and_the_pid_comes_from_local_peerpid() -> None:
    raw = xucred(501, [20, 12, 61])
    assert peercred.decode("xucred", raw, le32(987)) == (987, 501, 20)
    assert peercred.decode("xucred", raw, None) == (0, 501, 20)  # pid unknown: 0, still allowed


def test_freebsd_xucred_carries_the_pid_after_the_groups() -> None:
    assert peercred.decode("xucred+pid", freebsd_xucred(1001, [1001, 0], 555)) == (555, 1001, 1001)
    assert peercred.decode("xucred+pid", freebsd_xucred(0, [0], 0)) == (0, 0, 0)  # before cr_pid


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("ucred", b"\0" * 8),
        ("sockpeercred", b"\0" * 16),
        ("xucred", xucred(501, [20])[:-4]),  # short
        ("xucred", xucred(501, [20]) + b"\0" * 12),  # FreeBSD's size on macOS
        ("xucred", xucred(501, [20], version=1)),  # a layout we do not know
        ("xucred", xucred(501, [], ngroups=0)),  # no gid
        ("xucred", xucred(501, [20], ngroups=17)),
        ("xucred+pid", xucred(501, [20])),  # macOS's size on FreeBSD
        ("nothing", b"\0" * 12),
    ],
    ids=[
        "short",
        "long",
        "xucred-short",
        "xucred-long",
        "version",
        "no-groups",
        "17-groups",
        "freebsd-short",
        "no-kind",
    ],
)
def test_bytes_not_shaped_as_documented_are_refused(kind: str, raw: bytes) -> None:
    with pytest.raises(ValueError, match=re.escape(kind)):
        peercred.decode(kind, raw)


def test_the_linux_path_reads_this_process_and_other_platforms_fail_closed() -> None:
    """The real call on a real socket pair (the peer is this process); where no mechanism is
    known, or the call fails (here: macOS's option asked of Linux), PeerUnknown."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peercred.peer_credentials(a) == (os.getpid(), os.geteuid(), os.getegid())
        with pytest.raises(peercred.PeerUnknown, match="no way to tell a socket's peer on win32"):
            peercred.peer_credentials(a, "win32")
        with pytest.raises(peercred.PeerUnknown, match=r"could not be read"):
            peercred.peer_credentials(a, "darwin")


@pytest.mark.parametrize(("platform", "accepted"), [("linux", True), ("darwin", False), ("win32", False)])
def test_the_control_server_refuses_a_peer_it_cannot_identify(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, accepted: bool
) -> None:
    """A real ControlServer and client socket; the credential call is the real one, asked as
    ``platform`` would ask it: on Linux it works, macOS's option fails here, Windows has none."""
    monkeypatch.setattr(
        server, "peer_credentials", functools.partial(peercred.peer_credentials, platform=platform)
    )
    sel = selectors.DefaultSelector()
    srv = server.ControlServer(str(tmp_path / "control.sock"), sel, lambda v, a, p: v)
    srv.listen()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(srv.path)
            srv._on_accept(selectors.EVENT_READ)
            assert len(srv.conns) == (1 if accepted else 0)
            if not accepted:
                c.settimeout(5)
                answer = c.recv(4096)
                assert b"the supervisor cannot tell who you are" in answer
                assert c.recv(1) == b""  # and closed
    finally:
        srv.close()
        sel.close()
