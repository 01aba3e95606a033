"""Issue 15, item 6: the postgres readiness probe never reads through a symlink the database's
user planted in its data directory, and never repeats a line that is not a postmaster.pid's."""

from __future__ import annotations

import json
from pathlib import Path

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec, ReadyProbe
from tests.helpers.harness import Sandbox, wait_for
from tests.security.attacker import as_nobody, needs_root, nobody_dir

pytestmark = needs_root
SECRET = "ROOT-ONLY-PROBE-SECRET"


def test_status_never_shows_a_root_file_postmaster_pid_was_symlinked_to(sandbox: Sandbox) -> None:
    secret = sandbox.tmp / "root-only.conf"
    # Shaped like a postmaster.pid, so that only the symlink refusal keeps line 8 out of status.
    secret.write_text("1\n/x\n1\n5432\n/run\n*\n0\n" + SECRET + "\n")
    secret.chmod(0o600)
    data = nobody_dir("ad-sec-pgdata-")
    sandbox.cleanup_paths.append(data)
    pidfile = data / "postmaster.pid"
    spec = DaemonSpec(
        name="postgres",
        command=("/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"),
        pidfile=str(pidfile),
        user="nobody",
        cwd=str(data),
        ready=ReadyProbe(postgres=True),
        log=str(data / "postgres.log"),
        on_reload="keep",
    )
    runtime.join(sandbox.runtime_dir, sandbox.owner().pid, runtime.payload([spec], source="test"))
    pid = wait_for(lambda: sandbox.running("postgres"), 10, "postgres running")
    sandbox.extra_pids.add(pid)
    first_runs = "the probe's first runs"
    wait_for(lambda: "not started" in (sandbox.daemon("postgres")["error"] or ""), 10, first_runs)

    done = as_nobody(f"rm -f {pidfile} && ln -s {secret} {pidfile}")
    assert done.returncode == 0, done.stderr
    error = wait_for(
        lambda: (e := sandbox.daemon("postgres")["error"] or "") and "not started" not in e and e,
        10,
        "the probe to read the replaced postmaster.pid",
    )
    # A few more probe runs (1 s apart at most): none of them may show the secret either.
    for _ in range(3):
        shown = json.dumps(sandbox.status())
        assert SECRET not in shown, f"status shows a root-only file's line: {error!r}"
    assert "symbolic link" in error, error
    assert sandbox.daemon("postgres")["ready"] is not True


def test_a_postmaster_pid_with_an_unknown_status_line_is_not_repeated(tmp_path: Path) -> None:
    from attachdaemon_core.engine.probes import postgres_ready

    pidfile = tmp_path / "postmaster.pid"
    spec = DaemonSpec(name="pg", command=("postgres",), pidfile=str(pidfile))
    pidfile.write_text("123\n/x\n1\n5432\n/run\n*\n0\nstarting\n")
    assert postgres_ready(spec) == "postmaster.pid status is 'starting'"
    pidfile.write_text("123\n/x\n1\n5432\n/run\n*\n0\nready   \n")
    assert postgres_ready(spec) is None
    pidfile.write_text("123\n/x\n1\n5432\n/run\n*\n0\n" + SECRET + "\n")
    assert SECRET not in (postgres_ready(spec) or "")
    pidfile.write_text("root:x:0:0:root:/root:/bin/bash\n" * 8)
    assert "root:" not in (postgres_ready(spec) or "")
    pidfile.unlink()
    pidfile.mkdir()
    assert postgres_ready(spec) == f"cannot read {pidfile}: not a regular file"
