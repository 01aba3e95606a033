"""What the two samples declare, and the little clients their pages use to talk to those daemons.

Both samples (``django_site`` and ``flask_app``) import this module (their settings / app factory
put this directory on ``sys.path``) and call :func:`declarations`, which returns the
``ATTACH_DAEMONS`` mapping:

- ``kv``: ``kvstore.py``, the Python key-value daemon next to this file. Always declared (it needs
  only Python); attached, with a TCP ready probe.
- ``redis``: redis-server, smart (``--daemonize yes --pidfile …``), when ``redis-server`` is on PATH.
- ``memcached``: attached (``-l 127.0.0.1``, ``-u nobody`` when running as root), when on PATH.
- ``postgres``: a dedicated PostgreSQL cluster, smart, governed by its ``postmaster.pid``, when
  ``postgres`` and ``initdb`` are on PATH (Debian keeps them in /usr/lib/postgresql/NN/bin: add
  that to PATH). As root it runs as the ``postgres`` user, or is skipped when there is none.

Each program that is missing is left out with one line on stderr saying so (printed by the
process that reads the declarations, not by every gunicorn worker).

Runtime data (pidfiles, redis' dump, the PostgreSQL cluster) goes to ``<sample>/run/``, or to
``$SAMPLE_RUN_DIR``. As root, PostgreSQL runs as ``postgres``, which must pass through every
directory above its own: when the repository is closed to other users (under /root), the run
directory is ``/var/lib/attachdaemon-sample/<sample>/`` instead (root's, 0755), never a
world-writable place such as /tmp, where another user could plant the directory first.

Ports: fixed uncommon defaults (Django 7411-7414, Flask 7421-7424), each overridable:
``SAMPLE_KV_PORT``, ``SAMPLE_REDIS_PORT``, ``SAMPLE_MEMCACHED_PORT``, ``SAMPLE_PG_PORT``.

``python sample_daemons.py stop-smart [django|flask]…`` ends the smart daemons (redis, PostgreSQL)
that outlive the server by design: each pidfile is read, the pid checked to run the program, and
the process sent its stop signal (run it after the server has stopped; a running supervisor would
start them again).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT_RUN_BASE = Path("/var/lib/attachdaemon-sample")
KVSTORE = HERE / "kvstore.py"
PG_LAUNCH = HERE / "pg_launch.sh"
LOOPBACK = "127.0.0.1"
SAMPLES = {"django": ("django_site", 7411), "flask": ("flask_app", 7421)}
PORT_VARS = ("SAMPLE_KV_PORT", "SAMPLE_REDIS_PORT", "SAMPLE_MEMCACHED_PORT", "SAMPLE_PG_PORT")
_NOTED = "ATTACHDAEMON_SAMPLE_NOTED"


@dataclass(frozen=True)
class Layout:
    """Where one sample's daemons listen and keep their files."""

    sample: str
    run_dir: Path
    kv_port: int
    redis_port: int
    memcached_port: int
    pg_port: int

    @property
    def redis_dir(self) -> Path:
        return self.run_dir / "redis"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def pg_dir(self) -> Path:
        return self.run_dir / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_pidfile(self) -> Path:
        return self.pg_data / "postmaster.pid"


def layout(sample: str) -> Layout:
    directory, base_port = SAMPLES[sample]
    env_dir = os.environ.get("SAMPLE_RUN_DIR")
    if env_dir:
        run_dir = Path(env_dir).resolve()
    elif os.geteuid() == 0 and not _open_to_others(HERE / directory):
        # PostgreSQL refuses root and runs as "postgres", which must reach its data directory:
        # the repository (here under /root, say) is closed to it. A root-owned place, not /tmp.
        run_dir = ROOT_RUN_BASE / directory
    else:
        run_dir = HERE / directory / "run"
    ports = [int(os.environ.get(var) or base_port + i) for i, var in enumerate(PORT_VARS)]
    return Layout(sample, run_dir, *ports)


# ---------------------------------------------------------------------- the declarations
def declarations(sample: str) -> dict[str, dict[str, Any]]:
    """The ``ATTACH_DAEMONS`` mapping for ``sample``: kv always, the others where installed."""
    lay = layout(sample)
    if os.geteuid() == 0:
        if lay.run_dir.parent == ROOT_RUN_BASE:
            _make_dir(ROOT_RUN_BASE, 0o755)  # root's, under root's /var/lib
        _make_dir(lay.run_dir, 0o755)  # the postgres user goes through it to its own 0700 dir
    else:
        _make_dir(lay.run_dir, 0o700)
    notes: list[str] = []
    daemons: dict[str, dict[str, Any]] = {
        "kv": {
            "command": [sys.executable, str(KVSTORE), "--port", str(lay.kv_port)],
            "ready": {"tcp": f"{LOOPBACK}:{lay.kv_port}"},
            "stop_timeout": 5,
        }
    }

    redis = shutil.which("redis-server")
    if redis:
        _make_dir(lay.redis_dir, 0o700)
        command = [redis, "--port", str(lay.redis_port), "--bind", LOOPBACK, "--daemonize", "yes"]
        command += ["--pidfile", str(lay.redis_pidfile), "--dir", str(lay.redis_dir)]
        command += ["--logfile", str(lay.redis_dir / "redis.log")]
        daemons["redis"] = {
            # smart: it daemonizes and writes its pidfile; it outlives the server and is re-adopted.
            "command": command,
            "pidfile": str(lay.redis_pidfile),
            "ready": {"tcp": f"{LOOPBACK}:{lay.redis_port}"},
        }
    else:
        notes.append("redis-server not installed; skipping it")

    memcached = shutil.which("memcached")
    if memcached:
        command = [memcached, "-p", str(lay.memcached_port), "-l", LOOPBACK, "-U", "0"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # memcached refuses to run as root without -u
        daemons["memcached"] = {"command": command, "ready": {"tcp": f"{LOOPBACK}:{lay.memcached_port}"}}
    else:
        notes.append("memcached not installed; skipping it")

    postgres, initdb = shutil.which("postgres"), shutil.which("initdb")
    pg_user = _pg_user()
    if not (postgres and initdb):
        notes.append(
            "PostgreSQL (postgres, initdb) not installed or not on PATH; skipping it "
            "(Debian: add /usr/lib/postgresql/NN/bin to PATH)"
        )
    elif pg_user is None:
        notes.append("running as root and there is no 'postgres' user for PostgreSQL; skipping it")
    else:
        _make_dir(lay.pg_dir, 0o700, owner=pg_user or None)
        launch = ["/bin/sh", "-c", PG_LAUNCH.read_text(), "pg_launch.sh", initdb, postgres]
        daemons["postgres"] = {
            # pg_launch.sh runs initdb on the first start, then execs postgres (same pid), which
            # writes postmaster.pid: a smart daemon whose pidfile names the postgres program.
            "command": [*launch, str(lay.pg_data), str(lay.pg_port), str(lay.pg_dir)],
            "pidfile": str(lay.pg_pidfile),
            "process_name": os.path.realpath(postgres),
            "start_timeout": 60,  # initdb takes a few seconds on the first start
            "stop_signal": "SIGINT",  # fast shutdown (SIGTERM waits for every client to leave)
            "ready": {"postgres": True},
            "cwd": str(lay.pg_dir),
            **({"user": pg_user} if pg_user else {}),
        }
    _say_once(notes)
    return daemons


def _open_to_others(path: Path) -> bool:
    """Whether every directory from / down to ``path`` lets other users through, and none but
    the last's owner or root may write it (so the postgres user reaches what we create there)."""
    for part in [*reversed(path.parents), path]:
        try:
            st = part.stat()
        except OSError:
            return False
        if not st.st_mode & stat.S_IXOTH or st.st_mode & stat.S_IWOTH or st.st_uid not in (0, os.geteuid()):
            return False
    return True


def _pg_user() -> str | None:
    """'' when PostgreSQL may run as us, 'postgres' as root when that user exists, else None."""
    if os.geteuid() != 0:
        return ""
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def _make_dir(path: Path, mode: int, owner: str | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    st = path.lstat()
    if path.is_symlink() or st.st_uid not in (os.geteuid(), _uid(owner)):
        raise RuntimeError(f"{path} is a symlink or belongs to someone else; remove it")
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)
    path.chmod(mode)


def _uid(user: str | None) -> int:
    if not user:
        return os.geteuid()
    import pwd

    return pwd.getpwnam(user).pw_uid


def _say_once(notes: list[str]) -> None:
    """Print the skip lines in the process that reads the declarations, not in every worker."""
    if not notes or os.environ.get(_NOTED) or "gunicorn.arbiter" in sys.modules:
        return
    for note in notes:
        print(f"attachdaemon sample: {note}", file=sys.stderr, flush=True)
    os.environ[_NOTED] = "1"  # a dev server's reloader child inherits it: said once


# ---------------------------------------------------------------------- the pages' clients
def _ask(port: int, payload: bytes, until: bytes = b"\n", timeout: float = 2.0) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while not data.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def kv_incr(port: int, key: str) -> int:
    reply = _ask(port, f"INCR {key}\n".encode()).decode().strip()
    if not reply.lstrip("-").isdigit():
        raise RuntimeError(reply or "no reply")
    return int(reply)


def redis_incr(port: int, key: str) -> int:
    k = key.encode()
    reply = _ask(port, b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(k), k), b"\r\n").decode().strip()
    if not reply.startswith(":"):
        raise RuntimeError(reply or "no reply")
    return int(reply[1:])


def memcached_incr(port: int, key: str) -> int:
    for _ in range(3):
        reply = _ask(port, f"incr {key} 1\r\n".encode(), b"\r\n").decode().strip()
        if reply.isdigit():
            return int(reply)
        if reply != "NOT_FOUND":
            raise RuntimeError(reply or "no reply")
        if _ask(port, f"add {key} 0 0 1\r\n1\r\n".encode(), b"\r\n").startswith(b"STORED"):
            return 1
    raise RuntimeError("key kept disappearing")


def pg_query(port: int, sql: str, timeout: float = 3.0) -> list[list[str | None]]:
    """Run ``sql`` (simple query protocol, trust auth) and return the rows, as text.

    A dozen lines of the PostgreSQL wire protocol, so the demo needs no driver; use psycopg in a
    real app.
    """
    params = b"user\0postgres\0database\0postgres\0application_name\0attachdaemon-sample\0\0"
    rows: list[list[str | None]] = []
    error = None
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        sent_query = False
        buf = b""
        while True:
            while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", buf[1:5])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(error or "connection closed")
                buf += chunk
            kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
            body, buf = buf[5 : 1 + length], buf[1 + length :]
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise RuntimeError("the sample's PostgreSQL asks for a password (expected trust)")
            if kind == b"E":
                fields = dict((f[:1], f[1:].decode(errors="replace")) for f in body.split(b"\0") if f)
                error = fields.get(b"M", "error")
            elif kind == b"D":
                (n,), pos, row = struct.unpack("!h", body[:2]), 2, []
                for _ in range(n):
                    (size,) = struct.unpack("!i", body[pos : pos + 4])
                    pos += 4
                    row.append(None if size < 0 else body[pos : pos + size].decode())
                    pos += max(size, 0)
                rows.append(row)
            elif kind == b"Z":
                if error or sent_query:
                    break
                q = sql.encode() + b"\0"
                s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
                sent_query = True
        s.sendall(b"X\0\0\0\4")
    if error:
        raise RuntimeError(error)
    return rows


def pg_count_visit(port: int, sample: str) -> int:
    if sample not in SAMPLES:  # the only value put in the SQL text below
        raise ValueError(f"unknown sample {sample!r}")
    sql = (
        "CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, sample text, "  # noqa: S608
        "at timestamptz DEFAULT now()); "
        f"INSERT INTO visits (sample) VALUES ('{sample}'); "
        f"SELECT count(*) FROM visits WHERE sample = '{sample}'"
    )
    try:
        rows = pg_query(port, sql)
    except RuntimeError as exc:
        if "already exists" not in str(exc):  # two workers creating the table at once
            raise
        rows = pg_query(port, sql)
    return int(rows[-1][0] or 0)


def visit(sample: str, declared: set[str]) -> list[dict[str, Any]]:
    """Count this visit through each declared daemon; one row per daemon for the page."""
    lay = layout(sample)
    key = f"visits:{sample}"
    counters: list[tuple[str, str, Callable[[], int]]] = [
        ("kv", "visits counted by kv (kvstore.py, INCR)", lambda: kv_incr(lay.kv_port, key)),
        ("redis", "visits counted by redis (INCR)", lambda: redis_incr(lay.redis_port, key)),
        ("memcached", "visits counted by memcached (incr)", lambda: memcached_incr(lay.memcached_port, key)),
        ("postgres", "rows in PostgreSQL's visits table", lambda: pg_count_visit(lay.pg_port, sample)),
    ]
    out: list[dict[str, Any]] = []
    for name, label, count in counters:
        if name not in declared:
            out.append({"name": name, "label": label, "value": None, "error": "not declared (not installed)"})
            continue
        try:
            out.append({"name": name, "label": label, "value": count(), "error": None})
        except (OSError, RuntimeError, ValueError) as exc:
            out.append({"name": name, "label": label, "value": None, "error": f"unavailable: {exc}"})
    return out


def is_loopback(address: str | None) -> bool:
    return address in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


# ---------------------------------------------------------------------- stop-smart
SMART = (("redis", "redis-server", signal.SIGTERM), ("postgres", "postgres", signal.SIGINT))


def _runs(pid: int, program: str) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return os.path.basename(exe) == program or os.path.basename(argv0.split(" ")[0]) == program


def smart_pids(sample: str) -> dict[str, int]:
    """The smart daemons of ``sample`` that run now: name -> verified pid."""
    lay = layout(sample)
    files = {"redis": lay.redis_pidfile, "postgres": lay.pg_pidfile}
    found = {}
    for name, program, _sig in SMART:
        try:
            pid = int(files[name].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid > 1 and _runs(pid, program):
            found[name] = pid
    return found


def stop_smart(sample: str, timeout: float = 30.0) -> int:
    signals = {name: sig for name, _program, sig in SMART}
    pids = smart_pids(sample)
    if not pids:
        print(f"{sample}: no smart daemon running")
        return 0
    for name, pid in pids.items():
        print(f"{sample}: stopping {name} (pid {pid}) with {signals[name].name}")
        try:
            os.kill(pid, signals[name])
        except ProcessLookupError:
            pass
    end = time.monotonic() + timeout
    left = dict(pids)
    while left and time.monotonic() < end:
        left = {n: p for n, p in left.items() if _alive(p)}
        time.sleep(0.05)
    for name, pid in left.items():
        print(f"{sample}: {name} (pid {pid}) is still running after {timeout:g}s", file=sys.stderr)
    return 1 if left else 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "stop-smart" or any(a not in SAMPLES for a in argv[1:]):
        print("usage: python sample_daemons.py stop-smart [django|flask]…", file=sys.stderr)
        return 2
    return max(stop_smart(s) for s in (argv[1:] or list(SAMPLES)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
