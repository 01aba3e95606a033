"""The docs tests: README.md's and docs/'s blocks run for real, and the quick starts end to end.

At the end of a run that ran any block, one line says what happened to them:
``docs: N blocks run, M marked not runnable here, 0 failed``.
"""

from __future__ import annotations

import pytest

from tests.docs.blocks import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.seen():
        terminalreporter.write_line(TALLY.line())
        for reason in sorted(set(TALLY.missing)):
            terminalreporter.write_line(f"  skipped: {reason}")
