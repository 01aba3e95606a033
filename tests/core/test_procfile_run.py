"""A Procfile and env files under a real ``attachdaemon run`` (docs/procfile.md, docs/declarations.md).

Each daemon is a real Python process that writes its pid and environment to a file, then waits;
the tests read what the daemons saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.harness import PY, alive, wait_for

CLI = [sys.executable, "-m", "attachdaemon_core"]
DUMP = """\
import json, os, signal, sys
out = sys.argv[1]
with open(out + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "env": dict(os.environ), "cwd": os.getcwd()}, f)
os.rename(out + ".tmp", out)
signal.pause()
"""


class Running:
    """``attachdaemon --config FILE run`` as a real process in its own session."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runtime_dir = Path("/tmp") / f"adproc-{os.getpid()}-{abs(hash(str(tmp))) % 10**6}"
        self.proc: subprocess.Popen[bytes] | None = None
        (tmp / "dump.py").write_text(DUMP)

    def start(self, config: Path) -> None:
        env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": str(self.runtime_dir)}
        env.pop("PORT", None)
        with open(self.tmp / "run.out", "ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "--config", str(config), "run"],
                env=env,
                cwd=self.tmp,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def seen(self, name: str) -> dict:  # type: ignore[type-arg]
        path = self.tmp / f"{name}.json"
        return wait_for(lambda: json.loads(path.read_text()), 15, f"{name} to write {path}")  # type: ignore[no-any-return]

    def output(self) -> str:
        return (self.tmp / "run.out").read_text(errors="replace")

    def stop(self, pids: list[int]) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(self.runtime_dir)], check=False)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Running, list[int]]]:
    r, pids = Running(tmp_path), []
    yield r, pids
    r.stop(pids)


def test_run_config_procfile__two_entries_run_with_port_and_dot_env__stopped_with_run(
    running: tuple[Running, list[int]], tmp_path: Path
) -> None:
    r, pids = running
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").write_text(
        "# two processes, as honcho would run them\n"
        f"web: {PY} {tmp_path / 'dump.py'} {tmp_path / 'web.json'} --port $PORT\n"
        "\n"
        f"worker: {PY} ../dump.py {tmp_path / 'worker.json'}\n"
    )
    (app / ".env").write_text("export GREETING='hello world'\nDATABASE_URL=postgres://app:pw@127.0.0.1/app\n")
    r.start(app / "Procfile")
    web, worker = r.seen("web"), r.seen("worker")
    pids += [web["pid"], worker["pid"]]
    assert web["env"]["PORT"] == "5000" and worker["env"]["PORT"] == "5100"
    for seen in (web, worker):
        assert seen["cwd"] == str(app)
        assert seen["env"]["GREETING"] == "hello world"
        assert seen["env"]["DATABASE_URL"] == "postgres://app:pw@127.0.0.1/app"
    # `$PORT` made it a `sh -c "exec …"` line: the pid is python's own, not a shell's
    assert Path(f"/proc/{web['pid']}/exe").resolve() == Path(PY).resolve()
    assert alive(web["pid"]) and alive(worker["pid"])
    assert r.proc is not None
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=20) == 0
    wait_for(lambda: not alive(web["pid"]) and not alive(worker["pid"]), 10, "both daemons stopped")
    assert "Traceback" not in r.output()


def test_env_file__the_daemon_sees_its_values__env_wins__top_level_for_every_daemon(
    running: tuple[Running, list[int]], tmp_path: Path
) -> None:
    r, pids = running
    (tmp_path / "shared.env").write_text("SHARED=yes\nLEVEL=top\n")
    (tmp_path / "app.env").write_text('# app\nexport API_TOKEN="t0k en"\nLEVEL=file\nMULTI="a\nb"\n')
    dump = json.dumps([PY, str(tmp_path / "dump.py")])
    (tmp_path / "daemons.toml").write_text(
        'env_file = "shared.env"\n'
        f'[daemons.a]\ncommand = {dump[:-1]}, "a.json"]\ncwd = "."\nenv_file = ["app.env"]\n'
        'env = { LEVEL = "declared" }\n'
        f'[daemons.b]\ncommand = {dump[:-1]}, "b.json"]\ncwd = "."\n'
    )
    r.start(tmp_path / "daemons.toml")
    a, b = r.seen("a"), r.seen("b")
    pids += [a["pid"], b["pid"]]
    assert a["env"]["API_TOKEN"] == "t0k en" and a["env"]["MULTI"] == "a\nb"
    assert a["env"]["SHARED"] == "yes" and a["env"]["LEVEL"] == "declared"
    assert b["env"]["SHARED"] == "yes" and b["env"]["LEVEL"] == "top" and "API_TOKEN" not in b["env"]


def test_check_config_procfile__bad_lines_named_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nnot a line\n")
    (tmp_path / ".env").write_text("SECRET=hunter2\nbroken line hunter2\n")
    out = subprocess.run(
        [*CLI, "--config", str(tmp_path / "Procfile"), "check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1, out
    assert f"{tmp_path / 'Procfile'} line 2 is not 'name: command'" in out.stderr + out.stdout
    assert "line 2 is not KEY=VALUE" in out.stderr + out.stdout
    assert "hunter2" not in out.stderr + out.stdout and "Traceback" not in out.stderr
