"""Finding real server programs and free loopback ports for tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(program: str) -> str | None:
    """A PostgreSQL server program (initdb, postgres, pg_ctl), from PATH or Debian's layout."""
    found = shutil.which(program)
    if found:
        return found
    for path in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), reverse=True):
        if os.access(path, os.X_OK):
            return path
    return None


def memcached_get_set(port: int, key: str = "k", value: str = "v") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"set {key} 0 0 {len(value)}\r\n{value}\r\n".encode())
        assert s.recv(100).startswith(b"STORED")
        s.sendall(f"get {key}\r\n".encode())
        data = b""
        while not data.endswith(b"END\r\n"):
            data += s.recv(1000)
    return data.decode().split("\r\n")[1]


def redis_ping_unix(sock: str | os.PathLike[str]) -> bool:
    """Whether a redis-server answers PING on the unix socket ``sock``."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(os.fspath(sock))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(100).startswith(b"+PONG")
    except OSError:
        return False
