"""README "Platforms" and the test command's second pass (issue 14): the platform table agrees
with the trove classifiers, the tests it says run on both process layers are the ones marked
``both_layers``, and scripts/test.sh runs them a second time with the portable layer forced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from tests.conftest import BOTH_LAYERS

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# README row (first cell starts with it) → the trove classifier that names that platform, when
# the row's process layer is not "none".
CLASSIFIER_OF_ROW = {
    "Linux": "Operating System :: POSIX :: Linux",
    "macOS": "Operating System :: MacOS",
    "FreeBSD, OpenBSD, NetBSD": "Operating System :: POSIX :: BSD",
    "DragonFly": "Operating System :: POSIX :: BSD",
    "Windows": "Operating System :: Microsoft :: Windows",
}


def platform_rows() -> list[list[str]]:
    """The cells of each row of the README's Platforms table."""
    text = README.read_text()
    section = text.split("\n## Platforms\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| platform | process layer | tested |"), lines[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def classifiers() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["classifiers"])


@pytest.mark.unit
def test_the_classifiers_name_exactly_the_platforms_that_have_a_process_layer() -> None:
    """A row whose layer is "none" says it is not supported and has no classifier; every other
    row has its classifier; no other operating system is claimed."""
    named = {c for c in classifiers() if c.startswith("Operating System")}
    wanted = set()
    for row in platform_rows():
        platform, layer = row[0], row[1]
        key = next((k for k in CLASSIFIER_OF_ROW if platform.startswith(k)), None)
        assert key is not None, f"README Platforms row {platform!r} has no classifier in this test"
        if layer.startswith("none"):
            assert "not supported" in row[3], row
        else:
            wanted.add(CLASSIFIER_OF_ROW[key])
    assert named == wanted, f"pyproject classifiers {sorted(named)} vs README rows {sorted(wanted)}"


@pytest.mark.unit
def test_only_the_linux_rows_say_ci_and_each_layer_has_one() -> None:
    rows = platform_rows()
    ci = [row for row in rows if "CI" in row[2]]
    assert [re.split(r"[ ,]", row[0])[0] for row in ci] == ["Linux", "Linux"], ci
    assert "`linux`" in ci[0][1] and "whole suite" in ci[0][2]
    assert "`portable`" in ci[1][1] and "`both_layers`" in ci[1][2]
    for row in rows:
        if row[0].startswith(("macOS", "FreeBSD")):
            assert "`portable`" in row[1] and "kqueue" in row[1] and "not run" in row[2], row


@pytest.mark.unit
def test_the_test_script_runs_the_both_layers_tests_again_on_portable_and_the_marker_is_declared() -> None:
    script = (REPO / "scripts" / "test.sh").read_text()
    assert "ATTACHDAEMON_PLATFORM=portable" in script and '"both_layers"' in script
    with (REPO / "pyproject.toml").open("rb") as f:
        markers = tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("both_layers:") for m in markers)
    # CI's leftovers check brackets the one test.sh run, so both of its passes
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    runs = [i for i, line in enumerate(ci) if line.startswith("bash scripts/test.sh")]
    snapshot = [i for i, line in enumerate(ci) if "ci_leftovers.py snapshot" in line]
    check = [i for i, line in enumerate(ci) if "ci_leftovers.py check" in line]
    assert len(runs) == len(snapshot) == len(check) == 1 and snapshot[0] < runs[0] < check[0]


def test_both_layers_selects_the_event_table_safety_and_dev_server_tests() -> None:
    """What the README says the second pass runs, collected as the second pass collects it."""
    collect = ["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "both_layers"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *collect],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    files = {i.split("::")[0] for i in ids}
    assert files == {
        f.relative_to(REPO).as_posix()
        for p in BOTH_LAYERS
        for f in ([REPO / "tests" / p] if p.endswith(".py") else (REPO / "tests" / p).glob("test_*.py"))
    }
    names = " ".join(ids)
    for kind in ("test_attached__", "test_control__", "test_smart__", "test_smart2__"):
        assert kind in names, f"no {kind} test in the both_layers set"
    assert "[djsite-runserver]" in names and "[flaskapp-flask run]" in names
    assert all(i.startswith(("tests/core/", "tests/security/", "tests/faults/", "tests/e2e/")) for i in ids)


# scripts/test.sh with a stand-in virtualenv: each program records its arguments and the layer it
# was given, and pytest exits with the status a test asks for.
STUB = """#!/bin/sh
echo "${ATTACHDAEMON_PLATFORM:-auto}|$*" >> "$STUB_LOG"
case "$*" in
  "-m pytest"*) if [ -n "$ATTACHDAEMON_PLATFORM" ]; then exit "${SECOND:-0}"; fi; exit "${FIRST:-0}" ;;
esac
exit 0
"""


def run_script(tmp_path: Path, *args: str, first: int = 0, second: int = 0) -> tuple[int, list[str]]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("python", "ruff", "mypy", "lint-imports"):
        (venv / "bin" / name).write_text(STUB)
        (venv / "bin" / name).chmod(0o755)
    log = tmp_path / "log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "ATTACHDAEMON_PLATFORM"}
    env.update(VENV=str(venv), STUB_LOG=str(log), FIRST=str(first), SECOND=str(second))
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "test.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    runs = [line for line in log.read_text().splitlines() if "|-m pytest" in line]
    return done.returncode, runs


@pytest.mark.parametrize(
    ("args", "second"),
    [
        ((), "portable|-m pytest -m both_layers"),
        (("-x", "tests/e2e"), "portable|-m pytest -x tests/e2e -m both_layers"),
        (("-m", "e2e", "-q"), "portable|-m pytest -q -m (e2e) and both_layers"),
        (("-me2e or leader",), "portable|-m pytest -m (e2e or leader) and both_layers"),
        (("-m", "both_layers"), "portable|-m pytest -m both_layers"),
        (("-m", "unit"), None),
    ],
)
def test_test_sh_forwards_the_arguments_to_both_passes(
    tmp_path: Path, args: tuple[str, ...], second: str | None
) -> None:
    status, runs = run_script(tmp_path, *args)
    assert status == 0
    assert runs[0] == " ".join(("auto|-m pytest", *args))  # the first pass: the arguments as given
    assert runs[1:] == ([second] if second else [])


@pytest.mark.parametrize(
    ("first", "second", "status", "passes"),
    [
        (1, 0, 1, 2),  # a failure in the first pass still runs the second, and fails the script
        (0, 1, 1, 2),
        (1, 3, 1, 2),  # the first failure's status is the script's
        (0, 5, 0, 2),  # no both_layers test among those selected: not a failure
        (5, 5, 5, 2),
        (2, 0, 2, 1),  # interrupted (Ctrl-C): no second pass
        (4, 0, 4, 1),  # usage error: the second would repeat it
    ],
)
def test_test_sh_runs_both_passes_and_fails_when_either_fails(
    tmp_path: Path, first: int, second: int, status: int, passes: int
) -> None:
    got, runs = run_script(tmp_path, first=first, second=second)
    assert (got, len(runs)) == (status, passes)


@pytest.mark.unit
def test_readme_describes_the_second_pass() -> None:
    text = re.sub(r"\s+", " ", README.read_text().split("\n## Platforms\n", 1)[0])
    assert "ATTACHDAEMON_PLATFORM=portable" in text and "`both_layers`" in text
    assert "`bash scripts/test.sh -m unit`" in text and "no second pass" in text


# README row (its first cell starts with it) -> the sys.platform values of that row
PLATFORMS_OF_ROW = {
    "Linux": ["linux"],
    "macOS": ["darwin"],
    "FreeBSD, OpenBSD, NetBSD": ["freebsd14", "freebsd13", "openbsd7", "netbsd10"],
    "DragonFly": ["dragonfly6"],
    "Windows": ["win32"],
}


@pytest.mark.unit
def test_the_hosts_start_daemons_exactly_where_the_readme_gives_a_process_layer() -> None:
    """The host's platform gate (hosts/runtime.starts_daemons) against every README row: a row
    with a process layer starts daemons on each of its platforms, a row with none on none."""
    from attachdaemon_core.hosts import runtime

    rows = platform_rows()
    assert {next(k for k in PLATFORMS_OF_ROW if r[0].startswith(k)) for r in rows} == set(PLATFORMS_OF_ROW)
    for row in rows:
        key = next(k for k in PLATFORMS_OF_ROW if row[0].startswith(k))
        for platform in PLATFORMS_OF_ROW[key]:
            assert runtime.starts_daemons(platform) is not row[1].startswith("none"), (row[0], platform)
    assert not runtime.starts_daemons("cygwin") and not runtime.starts_daemons("sunos5")


@pytest.mark.unit
@pytest.mark.parametrize(("row", "platform"), [("DragonFly", "dragonfly6"), ("Windows", "win32")])
def test_a_platform_the_readme_says_is_not_supported_starts_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    row: str,
    platform: str,
) -> None:
    """The host's own platform gate, as the README row describes it (if the gate opens to a
    platform, its row and classifier must change with it)."""
    from attachdaemon_core.hosts import runtime

    (cells,) = [r for r in platform_rows() if r[0].startswith(row)]
    assert cells[1].startswith("none") and "start nothing and say so on stderr" in cells[3]
    monkeypatch.setattr(sys, "platform", platform)
    assert runtime.join(str(tmp_path / "rt"), os.getpid(), {"specs": []}) is None
    assert f"daemons are not started on {platform}; nothing was started" in capsys.readouterr().err
    assert not (tmp_path / "rt").exists()
