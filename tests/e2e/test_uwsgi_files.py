"""A real uwsgi.ini runs unchanged under `attachdaemon run --config` and under gunicorn with
``attach_daemons = "uwsgi.ini"`` (docs/uwsgi-files.md).

The file is xrmx/tcs-uwsgi's demo/vassals/redis.ini (tests/corpus/ini/SOURCES.md): ``%d`` and a
``%(…)`` reference build the paths of a smart daemon, redis-server started with --daemonize yes.
The test copies it byte for byte into the project, so ``%d`` is the project's directory, and
talks to the redis it started on the unix socket the file names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, free_port
from tests.helpers.servers import redis_ping_unix

CORPUS_FILE = Path(__file__).resolve().parent.parent / "corpus" / "ini" / "tcs-uwsgi-redis.ini"
REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (apt-get install redis-server)"
)


def project(host: Callable[..., Host]) -> tuple[Host, Path, Path]:
    h = host("plain")
    ini = h.dir / "uwsgi.ini"
    shutil.copyfile(CORPUS_FILE, ini)
    # %d ends with "/", so the file's "%d/redis" is DIR//redis, as under uWSGI
    return h, Path(f"{h.dir}//redis.pid"), Path(f"{h.dir}//redis.socket")


def stop_redis(h: Host, pidfile: Path) -> None:
    """A smart daemon outlives its server (uWSGI's meaning); the test ends the one it started."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().split()[0])
        h.box.extra_pids.add(pid)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 10, "redis-server to exit")


def test_attachdaemon_run_reads_the_uwsgi_ini_unchanged(host: Callable[..., Host]) -> None:
    h, pidfile, sock = project(host)
    try:
        checked = h.run([str(h.bin / "attachdaemon"), "--config", "uwsgi.ini", "check"])
        assert checked.returncode == 0, checked.stderr
        assert "1 daemon(s) declared in" in checked.stdout
        assert "not ours, ignored: redis_file" not in checked.stdout  # a placeholder of the file's own
        server = h.start([str(h.bin / "attachdaemon"), "--config", "uwsgi.ini", "run"], "run")
        wait_for(lambda: redis_ping_unix(sock), 20, f"redis on {sock}; run said: {server.output()[-800:]}")
        pid = int(pidfile.read_text().split()[0])
        assert [d["name"] for d in h.status()["daemons"]] == ["redis-server"]
        wait_for(
            lambda: h.status()["daemons"][0]["pid"] == pid, 10, "the supervisor to adopt the pidfile's pid"
        )
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
        assert alive(pid) and redis_ping_unix(sock)  # smart: kept on stop, as uWSGI keeps it
    finally:
        stop_redis(h, pidfile)


def test_gunicorn_attach_daemons_names_the_uwsgi_ini(host: Callable[..., Host]) -> None:
    h, pidfile, sock = project(host)
    (h.dir / "gunicorn.conf.py").write_text(
        "from attachdaemon_core.hosts.gunicorn import *  # noqa: F403\n\n"
        'wsgi_app = "wsgiapp:app"\n'
        'attach_daemons = "uwsgi.ini"\n'
    )
    port = free_port()
    try:
        server = h.gunicorn(port)
        wait_for(
            lambda: redis_ping_unix(sock), 20, f"redis on {sock}; gunicorn said: {server.output()[-800:]}"
        )
        wait_for(lambda: _http_ok(h, port), 20, "gunicorn to answer")
        assert "not ours" not in server.output()  # the file has no key that is not ours
        pid = int(pidfile.read_text().split()[0])
        wait_for(
            lambda: h.status()["daemons"][0]["pid"] == pid, 10, "the supervisor to adopt the pidfile's pid"
        )
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
    finally:
        stop_redis(h, pidfile)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sock.exists():
        time.sleep(0.05)  # redis removes its socket as it exits


def _http_ok(h: Host, port: int) -> bool:
    with contextlib.suppress(OSError):
        return " 200 " in h.http(port).split("\r\n", 1)[0]
    return False
