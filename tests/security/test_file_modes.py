"""Issue 15, item 2: what a root supervisor creates is private, whatever umask it was started with."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import PY, Sandbox, wait_for
from tests.security.attacker import NOBODY, as_nobody, needs_root

pytestmark = needs_root


def test_nobody_cannot_read_the_supervisor_log_list_logs_or_read_a_rotated_backup(sandbox: Sandbox) -> None:
    old = os.umask(0o022)  # the usual umask of a server started as root
    try:
        spec = DaemonSpec(
            name="worker",
            command=(
                PY,
                "-c",
                "print('secret-worker-output ' * 4, flush=True); import time; time.sleep(300)",
            ),
            log="runtime",
            log_max_bytes=10,
            log_backups=1,
            on_reload="keep",
        )
        payload = runtime.payload([spec], source="test")
        payload["read_only_uids"] = [NOBODY]  # gunicorn's user: may read status and logs, no more
        runtime.join(sandbox.runtime_dir, sandbox.owner().pid, payload)
    finally:
        os.umask(old)
    logs_dir = Path(sandbox.runtime_dir, "logs")
    log_file = logs_dir / "worker.log"
    first = wait_for(lambda: sandbox.running("worker"), 10, "worker running")
    wait_for(lambda: log_file.stat().st_size > 10, 10, "the worker's output in its log")
    os.kill(first, signal.SIGKILL)  # restarted: its log is rotated before the new start
    backup = logs_dir / "worker.log.1"
    wait_for(lambda: (sandbox.running("worker") or first) != first and backup.exists(), 10, "a rotation")
    assert "secret-worker-output" in backup.read_text()

    runtime_dir = sandbox.runtime_dir
    reads = as_nobody(
        f"cat {runtime_dir}/supervisor.log; echo rc=$?; ls {logs_dir}; echo rc=$?; "
        f"cat {backup}; echo rc=$?; cat {log_file}; echo rc=$?"
    )
    assert reads.stdout.count("rc=") == 4, reads
    assert "rc=0" not in reads.stdout, f"nobody read what it must not: {reads.stdout}"
    assert "supervisor started" not in reads.stdout and "secret-worker-output" not in reads.stdout
    assert "worker.log" not in reads.stdout
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (Path(runtime_dir, "supervisor.log"), backup, log_file)
    }
    assert modes == {"supervisor.log": 0o600, "worker.log.1": 0o600, "worker.log": 0o600}
    assert stat.S_IMODE(logs_dir.stat().st_mode) == 0o700
