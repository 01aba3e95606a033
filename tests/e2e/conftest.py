"""Fixtures for the host tests: a copied fixture project, and a second venv with gunicorn 23.0.0."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.harness import Sandbox
from tests.helpers.hosts import REPO, Host

GUNICORN_OLD = "23.0.0"


@pytest.fixture
def host(sandbox: Sandbox) -> Iterator[Callable[..., Host]]:
    made: list[Host] = []

    def make(fixture: str, python: str = sys.executable) -> Host:
        h = Host(sandbox, fixture, python)
        made.append(h)
        return h

    yield make
    problems = [p for h in made for p in h.cleanup()]
    assert not problems, problems


@pytest.fixture(scope="session")
def gunicorn23_python() -> str:
    """A venv with gunicorn 23.0.0 (whose master halts on a child exiting 3 or 4) and this repo.

    Made once (kept in /tmp between runs); Django, Flask and the rest come from the test venv
    through a .pth file, so only gunicorn is downloaded. Skipped when the index is unreachable.
    """
    tag = hashlib.sha256(f"{sys.executable}{GUNICORN_OLD}".encode()).hexdigest()[:8]
    venv = Path(f"/tmp/attachdaemon-gunicorn{GUNICORN_OLD}-{tag}")
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "-q",
                "--disable-pip-version-check",
                f"gunicorn=={GUNICORN_OLD}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(
                f"cannot install gunicorn {GUNICORN_OLD} (is the package index reachable?): "
                f"{result.stderr.strip()[-500:]}"
            )
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        ours = sysconfig.get_paths()["purelib"]
        Path(site, "attachdaemon-tests.pth").write_text(f"{REPO}\n{ours}\n")
        ready.write_text(GUNICORN_OLD)
    version = subprocess.run(
        [str(python), "-c", "import gunicorn; print(gunicorn.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        check=False,
    ).stdout.strip()
    assert version == GUNICORN_OLD, version
    return str(python)
