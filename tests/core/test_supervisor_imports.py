"""What a real supervisor imports: the limits, the notify sockets and the metrics scrape are
loaded only once a declaration (or a scrape) asks for them, so a supervisor of plain daemons
never carries them (engine/watches.py, engine/verbs.py).

Each test runs ``attachdaemon run`` with ``PYTHONPROFILEIMPORTTIME=1``: the owner, the guard and
the supervisor forked from it write every import they make to the shared stderr, read back here.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.test_cli import Run
from tests.helpers.harness import alive, supervisor_pids, wait_for

LIMITS = {"attachdaemon_core.engine.limits", "attachdaemon_core.engine.decide.limits"}
NOTIFY = {"attachdaemon_core.engine.notify", "attachdaemon_core.engine.decide.notify"}
SCRAPE = {"attachdaemon_core.engine.scrape", "attachdaemon_core.osproc.usage"}


class ImportRun(Run):
    def imported(self) -> set[str]:
        """Every module any process of the tree imported so far."""
        text = (self.tmp / "run.out").read_text(errors="replace")
        return {
            line.rsplit("|", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("import time:") and "|" in line
        }

    def running(self, name: str) -> bool:
        return any(d["name"] == name and d["state"] == "running" for d in self.status()["daemons"])


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ImportRun]]:
    runs: list[ImportRun] = []
    yield runs
    for r in runs:
        sups = supervisor_pids(str(r.runtime_dir))
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
            r.proc.wait(timeout=20)
        wait_for(lambda: not any(alive(p) for p in sups), 10, "the supervisor gone")  # noqa: B023


def start(started: list[ImportRun], tmp: Path, toml: str) -> ImportRun:
    r = ImportRun(tmp, toml)
    r.env["PYTHONPROFILEIMPORTTIME"] = "1"
    started.append(r)
    r.start()
    r.env.pop("PYTHONPROFILEIMPORTTIME")  # the CLI calls that follow print nothing of the kind
    wait_for(lambda: r.running("web"), 10, "web running")
    return r


def test_plain_daemons__no_limits_notify_or_scrape_module_imported(
    started: list[ImportRun], tmp_path: Path
) -> None:
    r = start(started, tmp_path, '[daemons.web]\ncommand = ["sleep", "1000"]\n')
    imported = r.imported()
    assert "attachdaemon_core.engine.supervisor" in imported  # the import trace works
    assert not imported & (LIMITS | NOTIFY | SCRAPE), imported & (LIMITS | NOTIFY | SCRAPE)
    out = r.cli("metrics")  # the first scrape loads its module, in the supervisor
    assert out.returncode == 0, out.stderr
    wait_for(lambda: r.imported() >= SCRAPE, 5, "the scrape's modules imported")
    assert not r.imported() & (LIMITS | NOTIFY)


def test_a_limit_declared__limits_imported_not_notify(started: list[ImportRun], tmp_path: Path) -> None:
    r = start(started, tmp_path, '[daemons.web]\ncommand = ["sleep", "1000"]\nmax_lifetime = 3600\n')
    imported = r.imported()
    assert imported >= LIMITS, LIMITS - imported
    assert not imported & (NOTIFY | SCRAPE), imported & (NOTIFY | SCRAPE)
    assert r.status()["daemons"][0]["restart_cause"] is None


def test_notify_declared__notify_and_the_limits_it_restarts_through_imported(
    started: list[ImportRun], tmp_path: Path
) -> None:
    r = start(started, tmp_path, '[daemons.web]\ncommand = ["sleep", "1000"]\nready = {notify = true}\n')
    imported = r.imported()
    assert imported >= NOTIFY | LIMITS, (NOTIFY | LIMITS) - imported
    assert not imported & SCRAPE, imported & SCRAPE
    assert (Path(r.runtime_dir) / "notify" / "web.sock").exists()
