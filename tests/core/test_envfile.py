"""env_file on a declaration and at the top of a TOML file (docs/declarations.md, "Env files")."""

from __future__ import annotations

from pathlib import Path

import pytest

from attachdaemon_core.spec.config_file import load_toml
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.envfile import read_env_files
from attachdaemon_core.spec.model import ConfigError

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)

HONCHO_ENV = Path(__file__).parents[1] / "corpus" / "procfile" / "honcho-env" / ".env"


def parse(decls: object, base: Path) -> dict[str, dict[str, str]]:
    return {s.name: dict(s.env) for s in parse_declarations(decls, base_dir=str(base))}


def error_of(decls: object, base: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_declarations(decls, base_dir=str(base))
    return str(info.value)


def test_the_syntax__export_quotes_comments_multiline(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\n"
        "\n"
        "export DATABASE_URL=postgres://app@127.0.0.1/app\n"
        "PLAIN=value # trailing comment\n"
        "SINGLE='literal $HOME \\n'\n"
        'DOUBLE="two\\nlines"\n'
        'MULTI="a\nb"\n'
        "EMPTY=\n"
        "SPACED = padded\n"
        "LITERAL=${PLAIN}\n"
        "BARE\n"
    )
    values, errors = read_env_files([str(tmp_path / ".env")])
    assert errors == []
    assert values == {
        "DATABASE_URL": "postgres://app@127.0.0.1/app",
        "PLAIN": "value",
        "SINGLE": "literal $HOME \\n",
        "DOUBLE": "two\nlines",
        "MULTI": "a\nb",
        "EMPTY": "",
        "SPACED": "padded",
        "LITERAL": "${PLAIN}",
    }


def test_honchos_own_env_fixture() -> None:
    """honcho's test .env: single quotes are literal; an unquoted value is taken as written."""
    values, errors = read_env_files([str(HONCHO_ENV)])
    assert errors == [] and values["TEST_ANIMAL"] == '"lion"'
    assert values["TEST_ANIMAL2"] == '\\"tiger\\"'  # honcho's shlex reading gives "tiger"


def test_declaration_env_file__a_path_or_a_list__later_files_win__env_wins(tmp_path: Path) -> None:
    (tmp_path / "base.env").write_text("A=base\nB=base\nC=base\n")
    (tmp_path / "local.env").write_text("B=local\nC=local\n")
    decls = {
        "one": {"command": "sleep 1", "env_file": "base.env"},
        "two": {"command": "sleep 1", "env_file": ["base.env", "local.env"], "env": {"C": "declared"}},
        "three": {"command": "sleep 1"},
    }
    assert parse(decls, tmp_path) == {
        "one": {"A": "base", "B": "base", "C": "base"},
        "two": {"A": "base", "B": "local", "C": "declared"},
        "three": {},
    }


def test_a_missing_env_file__error_naming_daemon_key_and_file(tmp_path: Path) -> None:
    text = error_of({"web": {"command": "sleep 1", "env_file": "nope.env"}}, tmp_path)
    assert f"daemon 'web', key 'env_file': env file {tmp_path / 'nope.env'} does not exist" in text


def test_bad_env_file_lines__named_by_number_never_echoing_a_value(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text('OK=1\nthe password is hunter2\nTOKEN="hunter2\n')
    text = error_of({"web": {"command": "sleep 1", "env_file": "app.env"}}, tmp_path)
    assert "key 'env_file': env file" in text and "line 2, 3 is not KEY=VALUE" in text
    assert "hunter2" not in text


def test_env_file_must_be_paths(tmp_path: Path) -> None:
    text = error_of({"web": {"command": "sleep 1", "env_file": 5}}, tmp_path)
    assert "key 'env_file': must be a path or a list of paths" in text


def test_every_problem_at_once(tmp_path: Path) -> None:
    decls = {
        "a": {"command": "sleep 1", "env_file": "a.env"},
        "b": {"command": "sleep 1", "env_file": "b.env", "stop_signal": "SIGNOPE"},
    }
    text = error_of(decls, tmp_path)
    assert "daemon 'a', key 'env_file'" in text and "daemon 'b', key 'env_file'" in text
    assert "daemon 'b', key 'stop_signal'" in text


def test_top_level_env_file_in_toml__every_daemon__under_its_own(tmp_path: Path) -> None:
    (tmp_path / "shared.env").write_text("SHARED=1\nLEVEL=top\n")
    (tmp_path / "web.env").write_text("LEVEL=daemon\n")
    (tmp_path / "daemons.toml").write_text(
        'env_file = "shared.env"\n'
        'uwsgi = ["attach-daemon = memcached -p 11390"]\n'
        '[daemons.web]\ncommand = "sleep 1"\nenv_file = "web.env"\n'
        '[daemons.kv]\ncommand = "sleep 1"\nenv = { LEVEL = "env" }\n'
    )
    specs = {s.name: dict(s.env) for s in load_toml(str(tmp_path / "daemons.toml")).specs}
    assert specs == {
        "web": {"SHARED": "1", "LEVEL": "daemon"},
        "kv": {"SHARED": "1", "LEVEL": "env"},
        "memcached": {"SHARED": "1", "LEVEL": "top"},
    }


def test_top_level_env_file_missing__named_once(tmp_path: Path) -> None:
    (tmp_path / "daemons.toml").write_text('env_file = ["gone.env"]\n[daemons.web]\ncommand = "sleep 1"\n')
    with pytest.raises(ConfigError) as info:
        load_toml(str(tmp_path / "daemons.toml"))
    (problem,) = info.value.problems
    assert problem.key == "env_file" and problem.daemon is None
    assert f"env file {tmp_path / 'gone.env'} does not exist" in problem.message
