"""nox: scripts/test.sh (linters, type check, guard-rails, tests) on every supported Python found.

    nox                      # every session whose interpreter exists; the others are skipped
    nox -s tests-3.12 -- -m unit
    PYENV_VERSION=3.10.13:3.11.7:3.12.1:3.13.0 nox   # pyenv: make its shims answer

Each session runs the very script CI runs, in the session's own virtualenv (VENV), so there is
one list of checks. The tests that start processes share one machine: run them one session at
a time (nox does).
"""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = False  # skip, do not fail, a Python not installed
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """bash scripts/test.sh [pytest arguments] with this Python."""
    session.run(
        "bash",
        "scripts/test.sh",
        *session.posargs,
        env={"VENV": str(session.virtualenv.location)},
        external=True,
    )
