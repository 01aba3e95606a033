"""What `attachdaemon migrate uwsgi.ini -o deploy` writes boots under real gunicorn with the
daemons running (docs/migrate.md): the app answers 200 on the address http-socket named, the
one-shot ran, the attached daemon serves and the smart redis-server answers; on SIGTERM gunicorn
exits 0, the attached daemon is gone and the smart one kept, as under uWSGI.

The uwsgi.ini includes xrmx/tcs-uwsgi's demo/vassals/redis.ini verbatim (tests/corpus/ini/
SOURCES.md: ``%d``, a ``%(…)`` of its own, a smart redis-server) with ``ini =``, beside the app
server's own options written here for the fixture's app.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
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


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.0 200")
    return False


def test_migrated_gunicorn_conf_boots_the_app_with_its_daemons(host: Callable[..., Host]) -> None:
    h = host("plain")
    app_port, files_port = free_port(), free_port()
    shutil.copyfile(CORPUS_FILE, h.dir / "redis.ini")
    (h.dir / "uwsgi.ini").write_text(
        "[uwsgi]\n"
        "master = true\n"
        "ini = redis.ini\n"
        f"http-socket = 127.0.0.1:{app_port}\n"
        "processes = 2\n"
        "harakiri = 30\n"
        "wsgi-file = wsgiapp.py\n"
        "callable = app\n"
        "die-on-term = true\n"
        "vacuum = true\n"
        "hook-pre-app = exec:touch %dmigrated.flag\n"
        f"attach-daemon = {sys.executable} -m http.server {files_port} --bind 127.0.0.1\n"
    )
    pidfile, sock = Path(f"{h.dir}//redis.pid"), Path(f"{h.dir}//redis.socket")  # %d ends with "/"
    made = h.run([str(h.bin / "attachdaemon"), "migrate", "uwsgi.ini", "-o", "deploy"])
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(h.dir / "deploy")) == ["MIGRATION.md", "daemons.toml", "gunicorn.conf.py"]
    notes = (h.dir / "deploy" / "MIGRATION.md").read_text()
    assert "`master` (line 2)" in notes and "`vacuum` (line 10)" in notes
    try:
        server = h.start([str(h.bin / "gunicorn"), "-c", "deploy/gunicorn.conf.py"], "gunicorn")
        said = server.output
        wait_for(lambda: answers(app_port), 30, f"the app on :{app_port}; gunicorn said: {said()[-800:]}")
        wait_for(lambda: answers(files_port), 20, f"the attached daemon; gunicorn said: {said()[-800:]}")
        wait_for(lambda: redis_ping_unix(sock), 20, f"redis on {sock}; gunicorn said: {said()[-800:]}")
        assert (h.dir / "migrated.flag").exists()  # the one-shot ran before the others started
        daemons = {d["name"]: d for d in h.status()["daemons"]}
        program = Path(sys.executable).name  # the attach-daemon line's name
        assert set(daemons) == {"redis-server", "touch", program}
        assert (daemons["redis-server"]["kind"], daemons[program]["kind"]) == ("smart", "attached")
        attached_pid = daemons[program]["pid"]
        assert alive(attached_pid)
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
        wait_for(lambda: not alive(attached_pid), 10, "the attached daemon to stop with gunicorn")
        assert redis_ping_unix(sock)  # smart: kept, as uWSGI keeps it
    finally:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().split()[0])
            h.box.extra_pids.add(pid)
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not alive(pid), 10, "redis-server to exit")
