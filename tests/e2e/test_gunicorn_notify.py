"""gunicorn under systemd ``Type=notify``: its master says READY=1 on NOTIFY_SOCKET only after
ATTACH_DAEMONS_WAIT_READY is satisfied (issue 13 §2), here by a daemon that reports its own
readiness with sd_notify. The test plays systemd: a datagram socket with SO_PASSCRED."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.core.test_self_report import DAEMON, Script
from tests.helpers.hosts import Host, free_port


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def receive(sock: socket.socket, timeout: float) -> tuple[str, int] | None:
    """One message and its sender's pid, or None after ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    except TimeoutError:
        return None
    pid = next(struct.unpack_from("3i", d)[0] for lvl, kind, d in ancillary if kind == socket.SCM_CREDENTIALS)
    return data.decode(), pid


def test_gunicorn_says_ready_to_systemd_only_once_its_daemons_are(
    host: Callable[..., Host], systemd: socket.socket, tmp_path: Path
) -> None:
    h = host("plain")
    script = Script(tmp_path / "nd")
    port = free_port()
    g = h.gunicorn(
        port,
        NOTIFY_SOCKET=systemd.getsockname(),
        AD_NOTIFY_DIR=str(script.dir),
        AD_NOTIFY_DAEMON=DAEMON,
        AD_WAIT_READY="30",
    )
    first = receive(systemd, 30)
    assert first is not None, g.output()
    text, sender = first
    assert text.startswith("STATUS=attachdaemon: waiting up to 30s for the daemons to be ready\n")
    assert "EXTEND_TIMEOUT_USEC=40000000" in text
    master = sender
    # While the daemon has not said READY=1, gunicorn says nothing more (an observation window).
    assert receive(systemd, 1.5) is None, "gunicorn told systemd something before its daemon was ready"
    h.box.extra_pids |= script.pids()
    assert next(d for d in h.status()["daemons"] if d["name"] == "nd")["ready"] is False
    script.send("READY=1\nSTATUS=serving")
    before = time.monotonic()
    got = receive(systemd, 30)
    assert got is not None, g.output()
    text, sender = got
    assert "READY=1" in text.split("\n") and sender == master
    assert time.monotonic() - before < 10
    nd = next(d for d in h.status()["daemons"] if d["name"] == "nd")
    assert nd["ready"] is True and nd["notify"] == {"status": "serving", "phase": None}
    assert "200 OK" in h.http(port)
