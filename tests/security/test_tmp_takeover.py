"""Issue 15, item 4: another user who gets to the shared temp directory first (``attachdaemon-0``
made, or a symlink put, before root's first run) never gets root's runtime directory, and a
client never talks to a socket in a directory another user controls."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc.paths import RuntimeDirError
from tests.helpers.harness import Sandbox
from tests.security.attacker import NOBODY, as_nobody, needs_root, nobody_dir

pytestmark = needs_root


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private stand-in for /tmp (root's, mode 1777) as the supervisor's TMPDIR: the real /tmp
    other tests share is left alone."""
    path = Path(tempfile.mkdtemp(prefix="ad-sec-tmp-", dir="/tmp"))
    path.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def takeover(sandbox: Sandbox, tmp: Path, script: str) -> str:
    """nobody runs ``script`` first; then root joins a supervisor in its usual runtime directory."""
    done = as_nobody(script)
    assert done.returncode == 0, done.stderr
    sandbox.runtime_dir = runtime.runtime_dir_for("security-test")
    assert sandbox.runtime_dir.startswith(f"{tmp}/attachdaemon-0/")
    with pytest.raises(RuntimeDirError) as refused:
        sandbox.join(sandbox.owner(), [])
    return str(refused.value)


def test_a_user_root_precreated_by_nobody_is_refused(sandbox: Sandbox, shared_tmp: Path) -> None:
    error = takeover(sandbox, shared_tmp, f"mkdir -m 755 {shared_tmp}/attachdaemon-0")
    assert f"runtime directory {shared_tmp}/attachdaemon-0 belongs to uid {NOBODY}" in error
    assert os.listdir(shared_tmp / "attachdaemon-0") == []


def test_a_user_root_symlinked_by_nobody_is_refused(sandbox: Sandbox, shared_tmp: Path) -> None:
    lair = shared_tmp / "lair"
    error = takeover(sandbox, shared_tmp, f"mkdir {lair} && ln -s {lair} {shared_tmp}/attachdaemon-0")
    assert f"runtime directory {shared_tmp}/attachdaemon-0 is a symbolic link" in error
    assert os.listdir(lair) == []


def test_a_client_sends_nothing_to_a_socket_in_nobodys_directory(tmp_path: Path) -> None:
    lair = nobody_dir("ad-sec-sock-")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - nobody's fake supervisor
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(str(lair / "control.sock"))
            srv.listen(1)
            os.write(w, b"L")
            srv.settimeout(3)
            got = b""
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    got = conn.recv(65536)
            os.write(w, got)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        assert os.read(r, 1) == b"L"
        with pytest.raises(client.NoSupervisor) as refused:
            client.call(str(lair), "status", timeout=1.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # ours: stop waiting for a connection
        got = b""
        while chunk := os.read(r, 65536):
            got += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
        shutil.rmtree(lair, ignore_errors=True)
    assert got == b"", f"the client sent nobody's socket: {got!r}"
    assert f"runtime directory {lair} belongs to uid {NOBODY}" in str(refused.value)
