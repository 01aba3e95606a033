"""Readiness probes (docs/declarations.md), run by the supervisor without blocking its loop.

TCP probes connect non-blockingly inside the loop; HTTP and command probes are child processes
(reaped by the supervisor's SIGCHLD handling) with a 2-second timeout; the postgres probe reads
the status line of ``postmaster.pid``.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys

from attachdaemon_core.spec.model import DaemonSpec, ReadyProbe

PROBE_TIMEOUT = 2.0
FIRST_INTERVAL = 0.1
MAX_INTERVAL = 1.0


def next_interval(previous: float) -> float:
    return min(MAX_INTERVAL, previous * 1.5) if previous else FIRST_INTERVAL


def probe_argv(probe: ReadyProbe) -> tuple[str, ...] | None:
    """The child-process argv for http/command probes; None for in-loop probes."""
    if probe.command is not None:
        return probe.command
    if probe.http is not None:
        return (sys.executable, "-m", "attachdaemon_core.engine.probes", probe.http)
    return None


def tcp_connect_start(host: str, port: int) -> tuple[socket.socket, bool]:
    """Begin a non-blocking connect; returns the socket and whether it already succeeded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    err = sock.connect_ex((host, port))
    if err == 0:
        return sock, True
    if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
        return sock, False
    sock.close()
    raise OSError(err, os.strerror(err))


def tcp_connect_result(sock: socket.socket) -> str | None:
    """After the socket became writable: None on success, else the error."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return None if err == 0 else os.strerror(err)


# The status words PostgreSQL writes on line 8 of postmaster.pid (PM_STATUS_* in pidfile.h).
POSTGRES_STATUSES = frozenset({"starting", "stopping", "ready", "standby"})
POSTMASTER_PID_LIMIT = 4096  # a real postmaster.pid is a few hundred bytes


def postgres_ready(spec: DaemonSpec) -> str | None:
    """None when postmaster.pid (next to the data dir pidfile) says 'ready', else why not.

    The data directory belongs to the database's user, not to us: the file is opened without
    following a symlink, must be a regular file, and only a known status word is ever repeated
    (the reason ends up in ``status``, which a read-only uid may see).
    """
    if spec.pidfile is None:
        return "no pidfile"
    try:
        fd = os.open(spec.pidfile, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"cannot read {spec.pidfile}: it is a symbolic link"
        return f"cannot read {spec.pidfile}: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"cannot read {spec.pidfile}: not a regular file"
        data = os.read(fd, POSTMASTER_PID_LIMIT + 1)
    except OSError as exc:
        return f"cannot read {spec.pidfile}: {exc.strerror}"
    finally:
        os.close(fd)
    lines = data.decode(errors="replace").splitlines()
    if len(data) > POSTMASTER_PID_LIMIT or not lines or not lines[0].strip().isdigit():
        return f"{spec.pidfile} is not a postmaster.pid"
    if len(lines) < 8:
        return "not started"
    status = lines[7].strip()
    if status == "ready":
        return None
    if status in POSTGRES_STATUSES:
        return f"postmaster.pid status is {status!r}"
    return f"{spec.pidfile} has no known status on its line 8"


def _http_main(url: str) -> int:
    """Child process: exit 0 when ``url`` answers with a status below 400."""
    import urllib.error  # here, not at the top: urllib costs the supervisor ~10 MB it never uses
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as resp:  # noqa: S310
            return 0 if resp.status < 400 else 1
    except urllib.error.HTTPError as exc:
        return 0 if exc.code < 400 else 1
    except (OSError, ValueError):
        return 1


if __name__ == "__main__":
    sys.exit(_http_main(sys.argv[1]))
