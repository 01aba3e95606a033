from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import leftovers
from tests.helpers.harness import Sandbox, wait_for

# A suite started in the background by a non-interactive shell (`bash .ci/run &`, a CI runner's
# job) inherits SIGINT and SIGQUIT ignored, and every program it starts would too: Ctrl-C would no
# longer stop runserver, flask run or `logs -f`, which the tests send it. Give them back their
# defaults here (an ignored signal survives exec; a handled one is reset to the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)

_LEFT: list[tuple[int, str]] = []
TESTS = Path(__file__).resolve().parent

# Markers (registered in pyproject.toml) given by directory; see pytest_collection_modifyitems.
_MARK_BY_DIR = {"e2e": "e2e", "leader": "leader", "chaos": "chaos"}

# ``both_layers``, by file or directory (relative to tests/): what issue 14 asks to pass on both
# process layers. scripts/test.sh runs these a second time with ATTACHDAEMON_PLATFORM=portable.
# The SPEC's event table (attached and control; smart and smart2), the safety tests, and the
# runserver and ``flask run`` end-to-end tests. A path here that no longer exists fails collection.
BOTH_LAYERS = (
    "core/test_events_attached.py",
    "core/test_events_smart.py",
    "core/test_safety.py",
    "security",
    "faults",
    "e2e/test_devservers.py",
)


def _both_layers(rel: tuple[str, ...]) -> bool:
    return any(rel[: len(p.split("/"))] == tuple(p.split("/")) for p in BOTH_LAYERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e, leader and chaos by directory, both_layers by file (BOTH_LAYERS); ``unit`` only where
    a test module or test says so (``pytestmark = pytest.mark.unit``: a pure test, see
    _no_processes); ``process`` for every other test, the default, so that a new test is treated
    as heavy until it is shown pure."""
    missing = [p for p in BOTH_LAYERS if not (TESTS / p).exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py BOTH_LAYERS names paths that are gone: {missing}")
    for item in items:
        try:
            rel = item.path.resolve().relative_to(TESTS).parts
        except ValueError:
            rel = ()
        top = rel[0] if rel else ""
        if top in _MARK_BY_DIR:
            item.add_marker(_MARK_BY_DIR[top])
        if _both_layers(rel):
            item.add_marker("both_layers")
        unit = item.get_closest_marker("unit") is not None
        if unit and item.get_closest_marker("process") is not None:
            raise pytest.UsageError(f"{item.nodeid}: marked both unit and process")
        if not unit:
            item.add_marker("process")


def _refuse(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(
            f"a test marked unit started a process ({what}): make it pure, or drop the unit mark"
        )

    return refuse


@contextlib.contextmanager
def _no_processes() -> Iterator[None]:
    """While a ``unit`` test sets up and runs, starting a process fails it: the mark is checked,
    not trusted. (os.fork, posix_spawn and subprocess's fork_exec: every way the code base and
    the tests start one.)"""
    targets: list[tuple[Any, str]] = [(os, n) for n in ("fork", "forkpty", "posix_spawn", "posix_spawnp")]
    if hasattr(subprocess, "_fork_exec"):  # Python >= 3.11
        targets.append((subprocess, "_fork_exec"))
    else:
        import _posixsubprocess

        targets.append((_posixsubprocess, "fork_exec"))
    with pytest.MonkeyPatch.context() as mp:
        for obj, name in targets:
            if hasattr(obj, name):
                mp.setattr(obj, name, _refuse(name))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("unit") is None:
        return (yield)
    with _no_processes():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("unit") is None:
        return (yield)
    with _no_processes():
        return (yield)


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
