"""The seed's examples, verbatim as uWSGI lines, against real memcached, PostgreSQL and redis."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.uwsgi_lines import parse_uwsgi_line
from tests.helpers.harness import Sandbox, alive, wait_for
from tests.helpers.servers import free_port, memcached_get_set, pg_bin, redis_ping

needs_memcached = pytest.mark.skipif(shutil.which("memcached") is None, reason="memcached is not installed")
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
# memcached refuses to run as root without -u; as another user it needs nothing extra.
AS_USER = " -u nobody" if os.geteuid() == 0 else ""


def memcached_pid(port: int) -> int | None:
    for name in os.listdir("/proc"):
        if (
            name.isdigit()
            and proc.cmdline(int(name))[:1] == ["memcached"]
            and str(port) in proc.cmdline(int(name))
        ):
            return int(name)
    return None


@needs_memcached
def test_memcached_as_attach_daemon_line(sandbox: Sandbox) -> None:
    port = free_port()
    specs = parse_declarations([f"attach-daemon = memcached -p {port} -l 127.0.0.1{AS_USER}"])
    assert specs[0].name == "memcached" and specs[0].kind == "attached"
    owner = sandbox.owner()
    sandbox.join(owner, specs)
    pid = wait_for(lambda: sandbox.running("memcached"), 5, "memcached")
    sandbox.extra_pids.add(pid)
    assert wait_for(lambda: memcached_get_set(port, "a", "1"), 5, "memcached answers") == "1"
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: (p := sandbox.running("memcached")) and p != pid and p, 5, "restarted")
    sandbox.extra_pids.add(new)
    assert wait_for(lambda: memcached_get_set(port, "b", "2"), 5, "answers again") == "2"
    owner.kill(signal.SIGKILL)
    wait_for(lambda: not alive(new), 3, "memcached stopped with the server")


@needs_memcached
def test_memcached_as_smart_attach_daemon_line(sandbox: Sandbox, tmp_path: Path) -> None:
    port = free_port()
    # memcached -u nobody writes its pidfile as nobody: a directory it can reach and write.
    piddir = Path(tempfile.mkdtemp(prefix="mc-", dir="/tmp"))
    os.chmod(piddir, 0o1777)
    sandbox.cleanup_paths.append(piddir)
    pidfile = piddir / "mc.pid"
    line = f"smart-attach-daemon = {pidfile} memcached -p {port} -l 127.0.0.1 -d -P {pidfile}{AS_USER}"
    specs = parse_declarations([line])
    assert specs[0].kind == "smart"
    owner = sandbox.owner()
    sandbox.join(owner, specs)
    pid = wait_for(lambda: sandbox.running("memcached"), 10, "memcached")
    sandbox.extra_pids.add(pid)
    assert pid == int(pidfile.read_text())
    assert memcached_get_set(port, "k", "kept") == "kept"
    owner.kill(signal.SIGKILL)
    wait_for(sandbox.supervisor_gone, 5, "supervisor gone")
    assert alive(pid) and memcached_get_set(port, "k2", "x") == "x"
    sandbox.join(sandbox.owner(), specs)
    assert wait_for(lambda: sandbox.running("memcached"), 5, "re-adopted") == pid
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: (p := sandbox.running("memcached")) and p != pid and p, 5, "restarted")
    sandbox.extra_pids.add(new)
    assert wait_for(lambda: memcached_get_set(port, "c", "3"), 5, "answers again") == "3"
    sandbox.call("stop", names=["memcached"])
    wait_for(lambda: not alive(new), 5, "stopped by command")


@needs_redis
def test_redis_server_attached_and_smart(sandbox: Sandbox, tmp_path: Path) -> None:
    p1, p2 = free_port(), free_port()
    pidfile = tmp_path / "redis.pid"
    specs = parse_declarations(
        [
            f"attach-daemon = redis-server --port {p1} --bind 127.0.0.1 --save '' --appendonly no",
            f"smart-attach-daemon = {pidfile} redis-server --port {p2} --bind 127.0.0.1 --save '' "
            f"--daemonize yes --pidfile {pidfile} --dir {tmp_path}",
        ]
    )
    assert [s.kind for s in specs] == ["attached", "smart"]
    owner = sandbox.owner()
    sandbox.join(owner, specs)
    attached = wait_for(lambda: sandbox.running("redis-server"), 5, "attached redis")
    smart = wait_for(lambda: sandbox.running("redis-server-2"), 10, "smart redis")
    sandbox.extra_pids.update({attached, smart})
    wait_for(lambda: redis_ping(p1) and redis_ping(p2), 5, "both answer PING")
    sandbox.reload(owner, specs)
    new_attached = wait_for(
        lambda: (p := sandbox.running("redis-server")) and p != attached and p, 5, "restarted"
    )
    sandbox.extra_pids.add(new_attached)
    assert sandbox.running("redis-server-2") == smart
    owner.kill(signal.SIGTERM)
    wait_for(lambda: not alive(new_attached), 5, "attached redis stopped")
    assert alive(smart) and redis_ping(p2)
    os.kill(smart, signal.SIGTERM)
    wait_for(lambda: not alive(smart), 5, "smart redis ended by the test")


def _psql(bindir: str, sockdir: Path, port: int) -> str:
    out = subprocess.run(
        [
            os.path.join(bindir, "psql") if os.path.exists(os.path.join(bindir, "psql")) else "psql",
            "-h",
            str(sockdir),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "select 42",
        ],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return out.stdout.strip()


@pytest.mark.skipif(
    pg_bin("initdb") is None or pg_bin("postgres") is None,
    reason="PostgreSQL server binaries are not installed",
)
def test_dedicated_postgresql_smart_daemon(sandbox: Sandbox, tmp_path: Path) -> None:
    initdb, postgres = pg_bin("initdb"), pg_bin("postgres")
    assert initdb and postgres
    runas: list[str] = []
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user")
        user = "postgres"
        runas = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))  # reachable by the postgres user
    sandbox.cleanup_paths.append(base)
    data = base / "data"
    if user:
        shutil.chown(base, user)
    subprocess.run(
        [*runas, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    decl = {
        "pg": {
            "command": [
                postgres,
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(base),
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            "pidfile": str(data / "postmaster.pid"),
            "stop_signal": "SIGINT",
            "ready": {"postgres": True},
            **({"user": user} if user else {}),
        }
    }
    specs = parse_declarations(decl)
    owner = sandbox.owner()
    sandbox.join(owner, specs)
    pid = wait_for(lambda: sandbox.running("pg"), 30, "postgres running")
    sandbox.extra_pids.add(pid)
    wait_for(lambda: sandbox.daemon("pg")["ready"], 30, "postgres ready")
    bindir = os.path.dirname(postgres)
    assert _psql(bindir, base, port) == "42"
    sandbox.reload(owner, specs)
    assert sandbox.running("pg") == pid and _psql(bindir, base, port) == "42"
    owner.kill(signal.SIGKILL)
    wait_for(sandbox.supervisor_gone, 5, "supervisor gone")
    assert alive(pid) and _psql(bindir, base, port) == "42"
    sandbox.join(sandbox.owner(), specs)
    assert wait_for(lambda: sandbox.running("pg"), 5, "re-adopted") == pid
    assert _psql(bindir, base, port) == "42"
    sandbox.call("stop", names=["pg"])
    wait_for(lambda: not alive(pid), 15, "postgres stopped with SIGINT (fast shutdown)")
    assert "stopping daemon 'pg'" in sandbox.log_text() and "with SIGINT" in sandbox.log_text()


# Moved from test_uwsgi_lines.py, whose tests are pure (marked unit): this one runs a program.
def test_shell_wrapped_command_really_execs_in_place(tmp_path: Path) -> None:
    """The tracked pid must be the program itself: `exec` replaces /bin/sh (docs/process-model.md)."""
    out = tmp_path / "out"
    script = 'import os; print(os.getpid(), os.environ["GREETING"])'
    decl, problems = parse_uwsgi_line(f"attach-daemon = GREETING=hi python3 -c '{script}' > {out}")
    assert problems == []
    command = decl["command"]
    assert isinstance(command, list)
    child = subprocess.Popen(command)
    assert child.wait(timeout=10) == 0
    assert out.read_text().split() == [str(child.pid), "hi"]
