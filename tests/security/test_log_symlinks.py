"""Issue 15, item 3: a root supervisor's log handling never follows a symlink a daemon's user
planted in its own log directory (rotation, the log file's open and chown, the ``logs`` verb)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.security.attacker import NOBODY, as_nobody, call_as_nobody, needs_root, nobody_dir

pytestmark = needs_root
SECRET = "ROOT-ONLY-SECRET-CONTENT\n"


def root_file(sandbox: Sandbox) -> Path:
    """A root-only file the attacker wants written, truncated, chowned or read."""
    path = sandbox.tmp / "root-only.conf"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def untouched(path: Path) -> bool:
    st = os.lstat(path)
    return path.read_text() == SECRET and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600


def start_worker(sandbox: Sandbox, lair: Path, name: str = "worker", **payload_extra: object) -> int:
    """A daemon run as nobody (or as the server's default user), logging into nobody's directory."""
    spec = DaemonSpec(
        name=name,
        command=("/bin/sh", "-c", "echo worker-output-worker-output; exec sleep 300"),
        cwd=str(lair),
        user=None if payload_extra else "nobody",
        log=str(lair / f"{name}.log"),
        log_max_bytes=10,
        log_backups=1,
        on_reload="keep",
    )
    payload = runtime.payload([spec], source="test")
    payload.update(payload_extra)
    runtime.join(sandbox.runtime_dir, sandbox.owner().pid, payload)
    pid = wait_for(lambda: sandbox.running(name), 10, f"{name} running")
    wait_for(lambda: (lair / f"{name}.log").stat().st_size > 10, 10, "its output in its log")
    return pid


def lair_for(sandbox: Sandbox) -> Path:
    lair = nobody_dir("ad-sec-logs-")
    sandbox.cleanup_paths.append(lair)
    return lair


def test_a__a_backup_symlinked_to_a_root_file_is_never_written_through(sandbox: Sandbox) -> None:
    target = root_file(sandbox)
    lair = lair_for(sandbox)
    pid = start_worker(sandbox, lair)
    done = as_nobody(f"ln -s {target} {lair}/worker.log.1 && kill {pid}")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: (sandbox.running("worker") or pid) != pid, 10, "worker restarted")
    assert untouched(target), f"rotation wrote through the symlink: {target.read_text()!r}"
    backup = lair / "worker.log.1"
    assert not backup.is_symlink() and "worker-output" in backup.read_text()


def test_b__a_log_symlinked_to_a_root_file_is_never_truncated_chowned_or_copied(sandbox: Sandbox) -> None:
    target = root_file(sandbox)
    lair = lair_for(sandbox)
    pid = start_worker(sandbox, lair)
    done = as_nobody(f"rm {lair}/worker.log && ln -s {target} {lair}/worker.log && kill {pid}")
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: sandbox.daemon("worker")["pid"] not in (pid, None) or sandbox.daemon("worker")["error"],
        10,
        "a restart",
    )
    assert untouched(target), (target.read_text(), os.lstat(target))
    assert "symbolic link" in (sandbox.daemon("worker")["error"] or ""), sandbox.daemon("worker")
    backup = lair / "worker.log.1"
    assert not backup.exists() or "ROOT-ONLY" not in backup.read_text()
    assert f"{lair}/worker.log" in sandbox.log_text() and "symbolic link" in sandbox.log_text()


def test_c__the_logs_verb_never_reads_through_a_symlink(sandbox: Sandbox) -> None:
    target = root_file(sandbox)
    lair = lair_for(sandbox)
    # Under gunicorn with user = nobody: daemons run as nobody, who may also read status and logs.
    start_worker(
        sandbox,
        lair,
        "celery",
        default_user={"uid": NOBODY, "gid": NOBODY},
        read_only_uids=[NOBODY],
    )
    done = as_nobody(f"rm {lair}/celery.log && ln -s {target} {lair}/celery.log")
    assert done.returncode == 0, done.stderr
    answer = call_as_nobody(sandbox.runtime_dir, "logs", name="celery", lines=50)
    assert "result" in answer, answer
    assert "ROOT-ONLY" not in str(answer), answer
    assert "symbolic link" in answer["result"].get("note", ""), answer
