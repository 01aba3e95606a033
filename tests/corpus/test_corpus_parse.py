"""Every corpus line, parsed as a line and through parse_declarations (the path hosts use).

A line the parser reads as uWSGI does must give its exact declaration dict (and the spec built
from it), or its exact problems, and its exact W004 notes (carried on the spec for ``check``). A
line listed in DISAGREEMENTS is held to uWSGI's meaning as a strict xfail (so a fix shows), and to
what the parser gives today; none is listed now, so those two tests have no case to run.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Mapping

import pytest

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec
from attachdaemon_core.spec.uwsgi_lines import parse_uwsgi_line
from tests.corpus.uwsgi_lines import (
    CORPUS_ENV,
    DISAGREEMENTS,
    LINES,
    SHAPES,
    CorpusLine,
    corpus_counts,
    problems_text,
    source_repository,
)

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)

BASE = "/srv/app"
AGREED = [c for c in LINES if c.line not in DISAGREEMENTS]
DIFFERING = [c for c in LINES if c.line in DISAGREEMENTS]


def label(c: CorpusLine) -> str:
    return f"{LINES.index(c):02d}-{c.line.split('=', 1)[0].strip()}"


@pytest.fixture(autouse=True)
def corpus_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CORPUS_ENV.items():
        monkeypatch.setenv(name, value)


def expected_spec(expect: Mapping[str, object]) -> DaemonSpec:
    """The spec a declaration dict stands for, relative paths against BASE (README's table)."""

    def path(value: object) -> str:
        return os.path.normpath(os.path.join(BASE, os.path.expanduser(str(value))))

    def program(value: object) -> str:
        return path(value) if "/" in str(value) else str(value)

    fields: dict[str, object] = {}
    for key, value in expect.items():
        if key == "name":
            continue
        if key == "command":
            assert isinstance(value, list)
            fields[key] = (program(value[0]), *value[1:])
        elif key in ("pidfile", "cwd"):
            fields[key] = path(value)
        elif key == "touch":
            assert isinstance(value, list)
            fields[key] = tuple(path(v) for v in value)
        elif key == "process_name":
            fields[key] = program(value)
        elif key in ("user", "group"):
            fields[key] = str(value)
        elif key in ("stop_signal", "reload_signal", "reload_stop_signal"):
            fields[key] = int(signal.Signals[value]) if isinstance(value, str) else value
        elif key in ("start_timeout", "max_backoff"):
            assert isinstance(value, int)
            fields[key] = float(value)
        elif key == "leader":
            assert isinstance(value, dict)
            fields[key] = LeaderSpec(lock=value["lock"], backend=value["backend"])
        else:
            fields[key] = value
    smart = "pidfile" in fields
    defaults = {
        "on_reload": "keep" if smart else "restart",
        "log": "runtime" if smart else "prefix",
        "restart": "never" if fields.get("control") else "always",
        "stop_timeout": 4.0 if "leader" in fields else 10.0,
    }
    return DaemonSpec(name=str(expect["name"]), **{**defaults, **fields})  # type: ignore[arg-type]


def declarations_outcome(line: str) -> tuple[DaemonSpec, ...] | str:
    try:
        return parse_declarations([line], base_dir=BASE)
    except ConfigError as exc:
        return problems_text(exc.problems)


# --- each line, as uWSGI reads it ------------------------------------------------------------------


@pytest.mark.parametrize("c", AGREED, ids=label)
def test_parse_uwsgi_line_gives_uwsgis_meaning(c: CorpusLine) -> None:
    decl, problems = parse_uwsgi_line(c.line)
    errors = [p for p in problems if not p.code.startswith("W")]
    notes = [p for p in problems if p.code.startswith("W")]
    if c.expect is not None:
        assert errors == []
        assert decl == c.expect
    else:
        assert problems_text(errors) == c.error
    assert tuple(str(p) for p in notes) == c.notes
    assert {p.code for p in notes} <= {"W004"}


@pytest.mark.parametrize("c", AGREED, ids=label)
def test_parse_declarations_gives_the_same(c: CorpusLine) -> None:
    outcome = declarations_outcome(c.line)
    if c.expect is not None:
        assert outcome == (expected_spec(c.expect),)
        assert isinstance(outcome, tuple)
        assert tuple(str(p) for p in outcome[0].extra.get("notes", ())) == c.notes  # what check shows
    else:
        assert outcome == c.error  # a refused line's notes are not raised with its errors


# --- where the parser differs from uWSGI today ----------------------------------------------------


@pytest.mark.xfail(strict=True, reason="the parser does not give uWSGI's meaning (DISAGREEMENTS)")
@pytest.mark.parametrize("c", DIFFERING, ids=label)
def test_disagreement_lines_give_uwsgis_meaning(c: CorpusLine) -> None:
    assert c.expect is not None
    decl, problems = parse_uwsgi_line(c.line)
    assert (decl, problems) == (c.expect, [])
    assert declarations_outcome(c.line) == (expected_spec(c.expect),)


@pytest.mark.parametrize("c", DIFFERING, ids=label)
def test_disagreement_lines_give_what_the_parser_gives_today(c: CorpusLine) -> None:
    today = DISAGREEMENTS[c.line]
    decl, problems = parse_uwsgi_line(c.line)
    if today.parser is not None:
        assert (decl, problems) == (today.parser, [])
    else:
        assert problems_text(problems) == today.parser_error
    if today.parser_error is not None:
        assert declarations_outcome(c.line) == today.parser_error
    elif today.declarations_error is not None:
        assert declarations_outcome(c.line) == today.declarations_error
    else:
        assert today.parser is not None
        assert declarations_outcome(c.line) == (expected_spec(today.parser),)


# --- the corpus itself ------------------------------------------------------------------------------


def test_every_line_has_a_source_one_outcome_and_a_known_shape() -> None:
    assert len({c.line for c in LINES}) == len(LINES), "no line twice"
    for c in LINES:
        assert c.source.strip(), c.line
        assert (c.expect is None) != (c.error is None), c.line
        assert c.shape is None or c.shape in SHAPES, c.line
        if c.shape is not None:
            assert c.expect is not None and c.line not in DISAGREEMENTS, c.line
    assert set(DISAGREEMENTS) <= {c.line for c in LINES}
    for line, d in DISAGREEMENTS.items():
        assert d.uwsgi.strip() and (d.parser is None) != (d.parser_error is None), line


def test_escaped_commas_and_leading_assignments_are_pinned() -> None:
    """attach-daemon2's ``\\,`` keeps a comma in the command; a leading ``VAR=value`` goes to sh."""
    escaped = [c for c in LINES if "\\," in c.line]
    assert escaped
    for c in escaped:
        decl, _ = parse_uwsgi_line(c.line)
        assert "-Qscheduled_queries,queries,celery" in decl["command"]  # type: ignore[operator]
    assigned = [c for c in LINES if c.expect is not None and c.expect.get("shell") and "cmd=ENV=" in c.line]
    assert len(assigned) >= 2
    for c in assigned:
        command = parse_uwsgi_line(c.line)[0]["command"]
        assert isinstance(command, list) and command[2].startswith("ENV=")
        assert " exec " in command[2]


def test_corpus_counts() -> None:
    lines, accepted, refused, unclear = corpus_counts()
    assert unclear == 0
    assert lines == len(LINES) >= 45
    assert accepted + refused >= 40
    assert refused >= 10
    assert len({source_repository(c.source) for c in LINES}) >= 12
    # As many of each runnable shape as the public lines found offer (smart2: none found, two
    # adapted, see the module).
    shapes = Counter(c.shape for c in LINES if c.shape is not None)
    minimum = {
        "foreground": 6,
        "console-script": 6,
        "self-daemonizing": 5,
        "launcher-script": 4,
        "sh-c": 2,
        "smart2": 2,
    }
    assert {s: n for s, n in shapes.items() if n < minimum[s]} == {}
    assert set(shapes) == set(minimum)
