"""Procfiles (docs/procfile.md): the corpus of real ones, read as foreman and honcho read them."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec
from attachdaemon_core.spec.procfile import is_procfile

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)

CORPUS = Path(__file__).parents[1] / "corpus" / "procfile"
VALID = sorted(p for p in CORPUS.glob("*.procfile") if "invalid" not in p.name)
SH = "/bin/sh"


def read(path: Path | str, base: Path | None = None) -> tuple[DaemonSpec, ...]:
    return parse_declarations(str(path), base_dir=str(base or CORPUS), source=str(path))


def error_of(path: Path, base: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        read(path, base)
    return str(info.value)


def same_command(spec: DaemonSpec, command: str) -> bool:
    """``spec`` runs ``command``: through ``sh -c`` (with ``exec`` before the program, after any
    ``VAR=value``), or split into words, a program with a ``/`` made absolute in the corpus."""
    if spec.command[0] == SH:
        return spec.command[1] == "-c" and spec.command[2] in (command, _with_exec(command))
    words = shlex.split(command)
    program = str(CORPUS / words[0]) if "/" in words[0] else words[0]
    return spec.command == (os.path.normpath(program), *words[1:])


def _with_exec(command: str) -> str:
    words = command.split(" ")
    n = next(i for i, w in enumerate(words) if "=" not in w)
    return " ".join([*words[:n], "exec", *words[n:]])


def env(spec: DaemonSpec) -> dict[str, str]:
    return dict(spec.env)


def test_the_corpus_has_real_procfiles() -> None:
    assert len(VALID) >= 12


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_each_corpus_procfile__one_attached_daemon_per_line_in_its_directory(path: Path) -> None:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    specs = read(path.name)
    assert [s.name for s in specs] == [ln.split(":", 1)[0] for ln in lines]
    for spec, line in zip(specs, lines, strict=True):
        command = line.split(":", 1)[1].strip()
        assert spec.kind == "attached" and spec.cwd == str(CORPUS)
        assert same_command(spec, command)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_each_corpus_procfile__read_as_honcho_reads_it(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """honcho itself as the oracle: the same names in the same order, the same command, the same PORT."""
    environ = pytest.importorskip("honcho.environ", reason="honcho is the oracle: pip install honcho")
    monkeypatch.delenv("PORT", raising=False)
    theirs = environ.parse_procfile(path.read_text()).processes
    expanded = {p.name.rsplit(".", 1)[0]: p for p in environ.expand_processes(theirs, port=5000)}
    specs = read(path)
    assert [s.name for s in specs] == list(theirs)
    for spec in specs:
        assert same_command(spec, theirs[spec.name].strip())
        assert env(spec)["PORT"] == expanded[spec.name].env["PORT"]


def test_ports__5000_then_100_more_per_line_as_honcho_and_foreman() -> None:
    specs = read("honcho-ports.procfile")
    assert [env(s)["PORT"] for s in specs] == ["5000", "5100", "5200", "5300"]


def test_ports__base_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "3000")
    assert [env(s)["PORT"] for s in read("svaudio.procfile")] == ["3000", "3100", "3200", "3300"]


def test_ports__base_from_dot_env_beside_the_procfile_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "3000")
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nworker: celery -A app worker\n")
    (tmp_path / ".env").write_text("# local\nexport PORT=8000\nSECRET_KEY='s3cret value'\n")
    web, worker = read("Procfile", tmp_path)
    assert env(web) == {"PORT": "8000", "SECRET_KEY": "s3cret value"}
    assert env(worker) == {"PORT": "8100", "SECRET_KEY": "s3cret value"}


def test_commands__plain_split__shell_syntax_through_sh_exec__several_commands_through_sh() -> None:
    by_name = {s.name: s for s in read("honcho-ports.procfile")}
    assert by_name["web"].command == (SH, "-c", "echo PORT=$PORT && sleep 1")
    discourse = {s.name: s for s in read("discourse.procfile")}
    assert discourse["web"].command == (SH, "-c", "exec bundle exec rails server -p $PORT")
    forem = {s.name: s for s in read("forem.procfile")}
    assert forem["release"].command == (
        SH,
        "-c",
        "STATEMENT_TIMEOUT=180000 exec bundle exec rails db:migrate",
    )
    assert forem["worker"].command == ("bundle", "exec", "rails", "jobs:work")
    mastodon = {s.name: s for s in read("mastodon-dev.procfile")}
    assert mastodon["webpack"].command == (str(CORPUS / "bin/webpack-dev-server"), "--host", "127.0.0.1")


def test_names_with_dash_and_underscore_are_kept() -> None:
    assert [s.name for s in read("graditude.procfile")] == ["release", "web", "worker_beat"]


def test_a_broken_procfile__every_bad_line_and_duplicate_named() -> None:
    path = CORPUS / "booking-system-invalid.procfile"
    text = error_of(path)
    assert f"{path} line 2 is not 'name: command'" in text
    assert f"{path} line 4 is not 'name: command'" in text
    assert "line 6: 'web' is already declared on line 3" in text
    assert "line 7: 'worker' is already declared on line 5" in text
    assert "line 8: 'worker' is already declared on line 5" in text


def test_honcho_refuses_the_broken_procfile_too() -> None:
    environ = pytest.importorskip("honcho.environ", reason="honcho is the oracle: pip install honcho")
    with pytest.raises(AssertionError, match="unique"):
        environ.parse_procfile((CORPUS / "booking-system-invalid.procfile").read_text())


def test_comments_blank_lines_crlf_and_quotes(tmp_path: Path) -> None:
    (tmp_path / "dev.procfile").write_text(
        "# the app\r\n\r\nweb: python -m http.server 8000 --bind 127.0.0.1\r\n  # indented comment\n"
        "kv: python kv.py --name 'two words'\n"
    )
    web, kv = read("dev.procfile", tmp_path)
    assert web.command == ("python", "-m", "http.server", "8000", "--bind", "127.0.0.1")
    assert kv.command == ("python", "kv.py", "--name", "two words")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web: sleep 1 &\n", "line 1: the command ends in '&'"),
        ("web: echo 'oops\n", "line 1: the command has an unterminated quote"),
        ("", "declares nothing"),
        ("# only a comment\n", "declares nothing"),
        ("web:\n", "line 1 is not 'name: command'"),
        ("web app: x\n", "line 1 is not 'name: command'"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "Procfile").write_text(text)
    assert expected in error_of(tmp_path / "Procfile", tmp_path)


def test_a_missing_procfile_is_named(tmp_path: Path) -> None:
    assert f"cannot read the Procfile {tmp_path / 'Procfile'}" in error_of(tmp_path / "Procfile", tmp_path)


def test_a_bad_dot_env_is_named_by_line_never_by_value(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\n")
    (tmp_path / ".env").write_text(
        "GOOD=1\nthis is not an assignment hunter2\nAPI_KEY='unterminated hunter2\n"
    )
    text = error_of(tmp_path / "Procfile", tmp_path)
    assert f"env file {tmp_path / '.env'}: line 2, 3 is not KEY=VALUE" in text
    assert "hunter2" not in text


def test_which_files_are_procfiles() -> None:
    for name in ("Procfile", "/srv/app/Procfile", "Procfile.dev", "Procfile.local", "web.procfile"):
        assert is_procfile(name), name
    for name in ("procfile", "daemons.toml", "uwsgi.ini", "Procfile.toml", "Procfile.ini", "app.yaml"):
        assert not is_procfile(name), name
