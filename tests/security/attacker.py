"""Playing the attacker for real: a local user (uid 65534, nobody) against a root supervisor.

The attacker's steps run under ``setpriv`` as uid/gid 65534 with no groups, through /bin/sh and
coreutils only (the test's Python lives under /root, which that uid cannot reach).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from attachdaemon_core.control import client

NOBODY = 65534
STANDIN = Path(__file__).resolve().parent.parent / "helpers" / "standin.py"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="plays a local user against a root supervisor")


def as_nobody(script: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with /bin/sh as uid/gid 65534 and no supplementary groups."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd="/",
        check=False,
    )


def nobody_dir(prefix: str) -> Path:
    """A fresh directory under /tmp owned by nobody (mode 0755), for the attacker's files."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, 0o755)
    return path


def install_standin(bindir: Path, name: str) -> Path:
    """A copy of tests/helpers/standin.py named ``name`` (the real program's stand-in)."""
    bindir.mkdir(parents=True, exist_ok=True)
    where = bindir / name
    where.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
    where.chmod(0o755)
    return where


def call_as_nobody(runtime_dir: str, verb: str, **args: Any) -> Any:
    """Send one control request as uid 65534: a forked child drops to that uid and no groups
    (nothing is loaded after the drop: sh and coreutils have no Unix-socket client). Returns
    the result, or the text of the error the supervisor (or the client) gave."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            try:
                out = {"result": client.call(runtime_dir, verb, **args)}
            except (client.ControlError, client.NoSupervisor) as exc:
                out = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(w, "w") as f:
                json.dump(out, f)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)
