"""The corpus's counts, printed at the end of the run (what CI shows)."""

from __future__ import annotations

import pytest

from tests.corpus import runtime
from tests.corpus.uwsgi_lines import corpus_counts


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines, accepted, refused, unclear = corpus_counts()
    r = runtime.RESULTS
    shapes = "runtime shapes: not run"
    if "shapes" in r:
        shapes = (
            f"runtime shapes: {r['shapes']}, {r['duplicates']} duplicates ({r['runtime_lines']} lines run)"
        )
    terminalreporter.write_line(
        f"corpus: {lines} lines, {accepted} accepted, {refused} refused with reason, {unclear} unclear; "
        + shapes
    )
    if "differential_lines" in r:
        terminalreporter.write_line(
            f"differential vs uWSGI: {r['differential_lines']} lines, {r['differential_observations']} "
            f"observations, {r['differential_intentional']} intentional differences, "
            f"{r['differential_unexplained']} unexplained"
        )
    else:
        terminalreporter.write_line("differential vs uWSGI: not run (see the skip reason)")
