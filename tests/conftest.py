from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import leftovers
from tests.helpers.harness import Sandbox, wait_for

_LEFT: list[tuple[int, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    leftovers.mark_run()
    # An app that opts in with ATTACH_DAEMONS_AUTOSTART starts its daemons in any process that
    # loads it, a test run included; the suite's in-process apps must not (docs/declarations.md,
    # "Host settings"). Server processes the tests start get an environment of their own.
    os.environ["ATTACH_DAEMONS_AUTOSTART"] = "0"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run ends by checking that no process it started is left; any that is fails the run
    (and is ended, by pid)."""
    marker = os.environ.get(leftovers.RUN_VAR)
    if marker is None:
        return
    left = leftovers.find(marker)
    if left:
        # A test's last teardown may still be in flight for a moment: only what stays counts.
        try:
            wait_for(lambda: not leftovers.find(marker), 3.0, "the run's processes to end")
        except AssertionError:
            pass
        left = leftovers.find(marker)
    _LEFT[:] = left
    if left:
        leftovers.kill([pid for pid, _ in left])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LEFT:
        terminalreporter.write_line(f"leftovers: {len(_LEFT)} process(es) outlived the tests (now killed):")
        for pid, cmd in _LEFT:
            terminalreporter.write_line(f"  pid {pid}: {cmd}")
    else:
        terminalreporter.write_line("leftovers: 0 processes outlived the tests")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    yield box
    problems = box.cleanup()
    assert not problems, problems
