"""Issue 15, item 1: a root supervisor never adopts another user's process named in a pidfile."""

from __future__ import annotations

import shutil
from pathlib import Path

from attachdaemon_core.osproc import proc
from attachdaemon_core.spec.declarations import check_specs, parse_declarations
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, alive, wait_for
from tests.security.attacker import NOBODY, as_nobody, install_standin, needs_root, nobody_dir

pytestmark = needs_root


def test_root_supervisor_refuses_a_pidfile_naming_nobodys_redis_server(sandbox: Sandbox) -> None:
    lair = nobody_dir("ad-sec-lair-")
    sandbox.cleanup_paths.append(lair)
    pidfile = lair / "redis.pid"
    # The attacker: a copy of sleep named redis-server, started, its pid in the pidfile.
    done = as_nobody(
        f"cp /bin/sleep {lair}/redis-server && "
        f"{lair}/redis-server 300 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}"
    )
    assert done.returncode == 0, done.stderr
    impostor = wait_for(lambda: int(pidfile.read_text().split()[0]), 5, "the attacker's pidfile")
    sandbox.extra_pids.add(impostor)
    wait_for(lambda: proc.exe(impostor) == f"{lair}/redis-server", 5, "the impostor to exec")
    assert proc.owner_uid(impostor) == NOBODY

    redis = install_standin(sandbox.tmp / "bin", "redis-server")
    spec = DaemonSpec(
        name="redis",
        command=(str(redis), "--port", "6390", "--daemonize", "yes", "--pidfile", str(pidfile)),
        pidfile=str(pidfile),
        on_reload="keep",
        log="runtime",
        env=(("STANDIN_EVENTS", str(sandbox.events.path)),),
    )
    sandbox.join(sandbox.owner(), [spec])
    pid = wait_for(lambda: sandbox.running("redis"), 10, "redis running")
    assert pid != impostor, "the root supervisor adopted nobody's process as its redis"
    assert proc.owner_uid(pid) == 0
    assert alive(impostor), "a process that is not ours was signalled"
    log = sandbox.log_text()
    assert f"names pid {impostor}" in log and f"uid {NOBODY}" in log, log
    shutil.rmtree(lair, ignore_errors=True)


def test_check_warns_about_a_pidfile_in_a_world_writable_directory(tmp_path: Path) -> None:
    lair = nobody_dir("ad-sec-w006-")
    try:
        lair.chmod(0o1777)  # as /tmp: sticky and writable by every user
        (spec,) = parse_declarations(
            {"redis": {"command": "redis-server --daemonize yes", "pidfile": f"{lair}/redis.pid"}},
            base_dir=str(tmp_path),
        )
        (problem,) = [p for p in check_specs([spec]) if p.code == "W006"]
        assert problem.key == "pidfile" and problem.daemon == "redis"
        assert f"directory {lair} of the pidfile is writable by every user (sticky)" in str(problem)
        # nobody really can put a pidfile there first.
        assert as_nobody(f"echo 1 > {lair}/redis.pid").returncode == 0
        lair.chmod(0o755)
        assert [p for p in check_specs([spec]) if p.code == "W006"] == []
    finally:
        shutil.rmtree(lair, ignore_errors=True)
