"""Real uwsgi.ini files run unchanged under each host (docs/uwsgi-files.md): ``attachdaemon
--config uwsgi.ini run``, gunicorn with ``attach_daemons = "uwsgi.ini"`` and Django with
``ATTACH_DAEMONS = "uwsgi.ini"`` (served by gunicorn).

The files are tests/corpus/ini/ copies of public repositories' files (SOURCES.md), copied byte for
byte beside the app; only the environment is the test's: ``$HOME`` for a ``$(HOME)``, and a
stand-in for a program the file names that is not installed here (its ``venv/bin/python``).

- ministryofjustice/money-to-prisoners-api's ``api.ini``: ``%d`` and ``%n``, four ``cron`` lines
  (one every minute, three daily), ``chdir = %d``.
- unbit/uwsgi.it's redis snippet: ``$(HOME)`` in a smart daemon, the real redis-server.
- xrmx/tcs-uwsgi's ``redis.ini``: ``%d`` and the file's own ``%(redis_file)`` in a smart daemon.
- unbit/uwsgi-docs' Heroku tutorial: ``exec-pre-app = /sbin/ifconfig eth0``, a one-shot (uWSGI's
  ``hook-pre-app = exec:`` spelled the short way), beside a ``$(PORT)`` in a key that is not ours.
- healthchecks' ``docker/uwsgi.ini``: ``hook-pre-app = exec:./manage.py migrate`` before three
  ``attach-daemon`` lines, one of them in an ``if-env`` block with ``%(_)``; its ``chdir`` is
  ``/opt/healthchecks``, which the test makes (as root) and removes.
- unbit/uwsgi.it's postgresql "auto-backup" snippet: ``$(HOME)`` and the file's own ``%(pg)`` in a
  smart ``postgres -D`` (the real server, adopted by its postmaster.pid), ``env = PGPASSWORD=…``
  and a daily ``cron`` line whose ``pg_dump | bzip2`` (real programs) runs on ``start``. No public
  file found has all of issue 12's six features; this one has four (no ``%d``, no
  ``hook-pre-app``). The file names ``/usr/lib/postgresql/9.1/bin/postgres``: 9.1 is not
  installed, so the test (as root) puts there a two-line stand-in that execs the installed
  ``postgres`` as the postgres user (PostgreSQL refuses root), and removes it after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, Server, free_port
from tests.helpers.servers import pg_bin, redis_ping_unix

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "ini"
REDIS = shutil.which("redis-server")
HOSTS = ["run", "gunicorn", "django"]

# The stand-in for the file's %d/venv/bin/python (no such virtualenv here): it records how it was
# run, where, and ends as a management command would.
PYTHON_STANDIN = """#!/bin/sh
printf '%s\\n' "$(printf '%s\\t' "$PWD" "$0" "$@")" >> "$PWD/ran.log"
"""


def _fixture(kind: str) -> str:
    return "djsite" if kind == "django" else "plain"


def _http_answers(h: Host, port: int) -> bool:
    with contextlib.suppress(OSError):
        return h.http(port).startswith("HTTP/1.")
    return False


def serve(h: Host, kind: str, **env: str) -> Server:
    """The uwsgi.ini in ``h.dir`` named by the host ``kind``; a web server answering for the two
    servers."""
    if kind == "run":
        return h.start([str(h.bin / "attachdaemon"), "--config", "uwsgi.ini", "run"], "run", **env)
    if kind == "gunicorn":
        (h.dir / "gunicorn.conf.py").write_text(
            "from attachdaemon_core.hosts.gunicorn import *  # noqa: F403\n\n"
            'wsgi_app = "wsgiapp:app"\n'
            'attach_daemons = "uwsgi.ini"\n'
        )
    else:  # the Django project's own gunicorn.conf.py; its settings name the file
        settings = h.dir / "djsite" / "settings.py"
        settings.write_text(settings.read_text() + '\nATTACH_DAEMONS = "uwsgi.ini"\n')
    port = free_port()
    server = h.gunicorn(port, **env)
    wait_for(lambda: _http_answers(h, port), 30, f"{kind} to answer; it said: {server.output()[-800:]}")
    return server


def stop(server: Server) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0, server.output()[-2000:]


# -- money-to-prisoners api.ini: %d, %n, cron lines


@pytest.mark.parametrize("kind", HOSTS)
def test_mtp_api_ini_cron_lines_are_jobs(host: Callable[..., Host], kind: str) -> None:
    h = host(_fixture(kind))
    shutil.copyfile(CORPUS / "mtp-api.ini", h.dir / "uwsgi.ini")
    python = h.dir / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(PYTHON_STANDIN)
    python.chmod(0o755)
    ran = h.dir / "ran.log"
    server = serve(h, kind)
    daemons = wait_for(lambda: h.status()["daemons"], 20, "the supervisor to answer")
    assert len(daemons) == 4
    assert all(d["state"] == "scheduled" and d["job"] is not None for d in daemons), daemons
    # uWSGI's -1 is cron's *, in the file's order
    schedules = [d["job"]["schedule"] for d in daemons]
    assert schedules == ["0 3 * * *", "* * * * *", "30 13 * * *", "10 0 * * *"], schedules
    every_minute, runs_before = daemons[1]["name"], daemons[1]["job"]["runs"]
    # due within the minute; `start` runs it now (a minute boundary may add a run of its own)
    started = h.run([str(h.bin / "attachdaemon"), "start", every_minute])
    assert started.returncode == 0, started.stdout + started.stderr

    def finished() -> dict[str, object] | None:
        job = h.box.daemon(every_minute)
        done = job["state"] == "scheduled" and job["job"]["last_exit"] is not None
        return job if done and job["job"]["runs"] > runs_before else None

    job = wait_for(finished, 20, f"a run of {every_minute} to end")
    assert job["job"]["last_exit"]["code"] == 0 and job["state"] == "scheduled", job
    cwd, argv0, *args = ran.read_text().splitlines()[0].rstrip("\t").split("\t")
    # chdir = %d; %d ends with "/", so "%d/manage.py" is DIR//manage.py, as under uWSGI
    assert Path(cwd) == h.dir
    assert Path(argv0).resolve() == python.resolve()
    assert args == [f"{h.dir}//manage.py", "run_scheduled_commands"], args
    stop(server)


# -- smart redis-servers: $(HOME) (uwsgi.it), %d and %(redis_file) (tcs-uwsgi)


def _uwsgi_it(h: Host) -> tuple[Path, Path, dict[str, str]]:
    """$(HOME)/run/redis-server.pid and $(HOME)/etc/redis.conf, as the snippet's reader sets up."""
    home = h.box.tmp / "home"
    (home / "run").mkdir(parents=True)
    (home / "etc").mkdir()
    sock = home / "redis.sock"
    (home / "etc" / "redis.conf").write_text(
        f"pidfile {home}/run/redis-server.pid\n"
        "daemonize yes\n"
        "port 0\n"
        f"unixsocket {sock}\n"
        f"dir {home}\n"
        f"logfile {home}/redis.log\n"
    )
    return home / "run" / "redis-server.pid", sock, {"HOME": str(home)}


def _tcs(h: Host) -> tuple[Path, Path, dict[str, str]]:
    return Path(f"{h.dir}//redis.pid"), Path(f"{h.dir}//redis.socket"), {}


SMART = {"uwsgi.it-redis-smart.ini": _uwsgi_it, "tcs-uwsgi-redis.ini": _tcs}


def _stop_redis(h: Host, pidfile: Path) -> None:
    """A smart daemon outlives its server (uWSGI's meaning); the test ends the one it started,
    before its directory goes (a redis-server whose dir was deleted ignores SIGTERM)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().split()[0])
        h.box.extra_pids.add(pid)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 10, "redis-server to exit")


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (apt-get install redis-server)")
@pytest.mark.parametrize("kind", HOSTS)
@pytest.mark.parametrize("corpus_file", sorted(SMART))
def test_smart_redis_ini_runs_unchanged(host: Callable[..., Host], kind: str, corpus_file: str) -> None:
    h = host(_fixture(kind))
    shutil.copyfile(CORPUS / corpus_file, h.dir / "uwsgi.ini")
    pidfile, sock, env = SMART[corpus_file](h)
    try:
        server = serve(h, kind, **env)
        wait_for(lambda: redis_ping_unix(sock), 20, f"redis on {sock}; {kind} said: {server.output()[-800:]}")
        pid = int(pidfile.read_text().split()[0])
        daemon = wait_for(
            lambda: (d := h.status()["daemons"][0])["pid"] == pid and d, 10, "the pidfile's pid adopted"
        )
        assert (daemon["name"], daemon["kind"], daemon["state"]) == ("redis-server", "smart", "running"), (
            json.dumps(daemon)
        )
        assert len(h.status()["daemons"]) == 1
        stop(server)
        assert alive(pid) and redis_ping_unix(sock)  # smart: kept on stop, as uWSGI keeps it
    finally:
        _stop_redis(h, pidfile)


# -- uwsgi-docs' Heroku tutorial: exec-pre-app, a one-shot

IFCONFIG = Path("/sbin/ifconfig")


@pytest.mark.skipif(
    not (IFCONFIG.exists() and Path("/sys/class/net/eth0").exists()),
    reason="the file runs /sbin/ifconfig eth0: needs net-tools and an eth0 interface",
)
@pytest.mark.parametrize("kind", HOSTS)
def test_heroku_ini_exec_pre_app_runs_once_to_completion(host: Callable[..., Host], kind: str) -> None:
    h = host(_fixture(kind))
    shutil.copyfile(CORPUS / "uwsgi-docs-heroku-python.ini", h.dir / "uwsgi.ini")
    server = serve(h, kind, PORT=str(free_port()))

    def completed() -> dict[str, object] | None:
        d = h.status()["daemons"][0]
        return d if d["last_exit"] is not None else None

    task = wait_for(completed, 20, f"the one-shot to end; {kind} said: {server.output()[-800:]}")
    assert (task["name"], task["oneshot"], task["ready"]) == ("ifconfig", True, True), json.dumps(task)
    assert task["last_exit"] == {**task["last_exit"], "code": 0, "signal": None}, json.dumps(task)
    assert task["pid"] is None or not alive(task["pid"])  # ran to its end, not restarted
    assert len(h.status()["daemons"]) == 1
    stop(server)


# -- healthchecks' docker/uwsgi.ini: hook-pre-app = exec:./manage.py migrate before its daemons

HC_DIR = Path("/opt/healthchecks")  # the file's chdir, absolute: made for the test, then removed
HC_MANAGE = """#!/bin/sh
echo "$*" >> /opt/healthchecks/ran.log
case "$1" in
  migrate) sleep 1; echo "migrate-done" >> /opt/healthchecks/ran.log; exit 0 ;;
esac
exec sleep 600
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the file's chdir is /opt/healthchecks: needs root to make it")
@pytest.mark.parametrize("kind", HOSTS)
def test_healthchecks_ini_hook_pre_app_runs_before_the_daemons(host: Callable[..., Host], kind: str) -> None:
    """The file as the healthchecks Docker image ships it: its ``hook-pre-app`` migration is a
    one-shot, and the ``attach-daemon`` lines (``%(_)`` from its ``if-env`` block included) start
    only once it has exited 0. Only the environment is the test's: SMTPD_PORT, and a stand-in
    ``manage.py`` in the file's chdir."""
    if HC_DIR.exists():
        pytest.skip(f"{HC_DIR} exists here (a real install?): not touched")
    h = host(_fixture(kind))
    shutil.copyfile(CORPUS / "healthchecks-docker-uwsgi.ini", h.dir / "uwsgi.ini")
    try:
        HC_DIR.mkdir(parents=True)
        manage = HC_DIR / "manage.py"
        manage.write_text(HC_MANAGE)
        manage.chmod(0o755)
        server = serve(h, kind, SMTPD_PORT="2525")
        log = HC_DIR / "ran.log"

        def settled() -> list[dict[str, object]] | None:
            ds = h.status()["daemons"]
            running = [d for d in ds if not d["oneshot"] and d["state"] == "running"]
            return ds if len(running) == 3 else None

        daemons = wait_for(settled, 30, f"the three daemons running; {kind} said: {server.output()[-800:]}")
        (task,) = [d for d in daemons if d["oneshot"]]
        assert task["ready"] is True and task["last_exit"]["code"] == 0, json.dumps(task)
        lines = wait_for(
            lambda: len(log.read_text().splitlines()) >= 5 and log.read_text().splitlines(), 10, "log"
        )
        assert lines[:2] == ["migrate", "migrate-done"], lines  # the daemons waited for the one-shot
        assert sorted(lines[2:]) == ["sendalerts", "sendreports --loop", "smtpd --port 2525"], lines
        stop(server)
        assert not any(alive(d["pid"]) for d in daemons if d["pid"])  # attached: ended with the server
    finally:
        shutil.rmtree(HC_DIR, ignore_errors=True)


# -- uwsgi.it's postgresql auto-backup snippet: a smart postgres and a cron pg_dump

PG91 = Path("/usr/lib/postgresql/9.1")  # the file's postgres: a stand-in made for the test, then removed
PG_STANDIN = '#!/bin/sh\nexec setpriv --reuid=postgres --regid=postgres --init-groups {postgres} "$@"\n'
PG_NEEDS = ("initdb", "postgres")


def _pg_cluster(h: Host) -> tuple[Path, dict[str, str]]:
    """$(HOME)/db.pg as the snippet's reader makes it (initdb -A md5), for its user ZZZ whose
    password is XXX, and $(HOME)/backup; the server on a unix socket in $(HOME) only."""
    initdb = pg_bin("initdb")
    assert initdb is not None
    home = Path(tempfile.mkdtemp(prefix="uwsgi-it-pg-", dir="/tmp"))  # reachable by the postgres user
    h.box.cleanup_paths.append(home)
    shutil.chown(home, "postgres")
    (home / "pw").write_text("XXX\n")
    shutil.chown(home / "pw", "postgres")
    argv = ["runuser", "-u", "postgres", "--", initdb, "-A", "md5", "-U", "ZZZ", f"--pwfile={home}/pw"]
    subprocess.run(
        [*argv, "-D", str(home / "db.pg"), "-E", "UTF-8"], check=True, capture_output=True, timeout=120
    )
    (home / "pw").unlink()
    port = str(free_port())
    with open(home / "db.pg" / "postgresql.conf", "a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{home}'\n")
    (home / "backup").mkdir()
    return home, {"HOME": str(home), "PGHOST": str(home), "PGPORT": port}


def _stop_postgres(h: Host, pidfile: Path) -> None:
    """Smart: kept when its server stops (uWSGI's meaning); the test ends it (SIGINT: fast)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().split()[0])
        h.box.extra_pids.add(pid)
        os.kill(pid, signal.SIGINT)
        wait_for(lambda: not alive(pid), 20, "postgres to exit")


@pytest.mark.skipif(
    os.geteuid() != 0 or any(pg_bin(p) is None for p in PG_NEEDS) or not shutil.which("setpriv"),
    reason="needs root (the file's postgres is under /usr/lib/postgresql/9.1), PostgreSQL and setpriv",
)
@pytest.mark.parametrize("kind", HOSTS)
def test_uwsgi_it_postgresql_backup_smart_daemon_and_cron(host: Callable[..., Host], kind: str) -> None:
    if PG91.exists():
        pytest.skip(f"{PG91} exists here (a real install?): not touched")
    h = host(_fixture(kind))
    shutil.copyfile(CORPUS / "uwsgi.it-postgresql-backup.ini", h.dir / "uwsgi.ini")
    home, env = _pg_cluster(h)
    pidfile = home / "db.pg" / "postmaster.pid"  # %(pg)/postmaster.pid, pg = $(HOME)/db.pg
    try:
        (PG91 / "bin").mkdir(parents=True)
        (PG91 / "bin" / "postgres").write_text(PG_STANDIN.format(postgres=pg_bin("postgres")))
        (PG91 / "bin" / "postgres").chmod(0o755)
        h.env.pop("PGPASSWORD", None)  # the job's password must come from the file's env line
        server = serve(h, kind, **env)

        def said() -> str:
            return server.output()[-800:]

        def adopted() -> dict[str, Any] | None:
            d = h.box.daemon("postgres")
            return d if d["state"] == "running" and pidfile.exists() else None

        pg = wait_for(adopted, 30, f"postgres adopted; {kind} said: {said()}")
        assert pg["kind"] == "smart" and pg["pid"] == int(pidfile.read_text().split()[0]), json.dumps(pg)
        # the reader's last step: the database YYY of user ZZZ (password XXX)
        made = subprocess.run(
            ["createdb", "-U", "ZZZ", "YYY"],
            env={**h.env, **env, "PGPASSWORD": "XXX"},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert made.returncode == 0, made.stderr
        job = h.box.daemon("pg_dump")
        assert job["state"] == "scheduled" and job["job"]["schedule"] == "59 3 * * *", json.dumps(job)
        due = time.localtime(job["job"]["next_run"])
        assert (due.tm_hour, due.tm_min) == (3, 59) and 0 < job["job"]["next_run"] - time.time() <= 90000
        before = time.time()
        started = h.run([str(h.bin / "attachdaemon"), "start", "pg_dump"])
        assert started.returncode == 0, started.stdout + started.stderr

        def ran() -> dict[str, Any] | None:
            j = h.box.daemon("pg_dump")
            return j if j["job"]["runs"] >= 1 and j["job"]["last_exit"] is not None else None

        job = wait_for(ran, 30, f"the pg_dump job to end; {kind} said: {said()}")
        assert job["job"]["last_exit"]["code"] == 0 and job["state"] == "scheduled", json.dumps(job)
        # %%d is date's %d; $(HOME) resolved; PGPASSWORD came from the file's env line
        # (the day of the run in the zones in play: the job's date may run in UTC while this process
        # reads TZ as a Django settings module left it, and the run may straddle midnight)
        moments = (before, time.time())
        days = {time.strftime("%d", at(t)) for t in moments for at in (time.localtime, time.gmtime)}
        (dump,) = sorted((home / "backup").iterdir())
        assert dump.name in {f"YYY_{d}.sql.bz2" for d in days}, (dump, days)
        text = subprocess.run(
            ["bzcat", str(dump)], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        assert "PostgreSQL database dump" in text, text[:400]
        assert len(h.status()["daemons"]) == 2
        stop(server)
        assert alive(pg["pid"])  # smart: kept on stop, as uWSGI keeps it
    finally:
        _stop_postgres(h, pidfile)
        shutil.rmtree(PG91, ignore_errors=True)
