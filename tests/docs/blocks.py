"""The code blocks of README.md and docs/*.md, found by sybil and run for real.

Sybil's Markdown parsers find the fenced blocks and the ``<!-- skip: next "reason" -->`` marks;
the evaluators below give each language its meaning. Each document gets a scratch directory
(``DocState``) shared by its blocks, in order:

- ``python`` blocks name their file on their first line. ``# settings.py``: appended to the
  settings of a real ``django-admin startproject mysite`` project (blocks accumulate, as in a
  reader's project), then ``manage.py check`` and ``manage.py daemons check`` must pass.
  ``# urls.py``: appended to that project's urls.py; ``check`` passes and the status page's URL
  resolves. ``# app.py``: a Flask app module; ``flask daemons check`` passes.
  ``# gunicorn.conf.py``: run by a real gunicorn (``-c gunicorn.conf.py -b 127.0.0.1:PORT
  app:app``, with a hello-world WSGI ``app.py``, the reader's own app): every declared daemon must
  run and be ready, gunicorn answers, Ctrl-C stops the attached daemons and the supervisor, and
  the smart ones, still running as documented, are then stopped by pid.
- ``toml`` blocks name their file on their first line (``# daemons.toml``), ``ini`` blocks too
  (``; uwsgi.ini``); it is written to the document's directory and ``attachdaemon -c FILE
  check`` must pass.
- ``sh`` blocks: each line runs in that directory with bash. A line ending in ``&`` starts in the
  background (its own session); every other line must exit 0, retried for up to ``RETRY`` seconds
  as a person would run it again while daemons start. At the end of the block the background
  commands get Ctrl-C (SIGINT to their process group) and must exit 0, and their supervisors
  must be gone.
- ``console`` blocks: the same, for ``$ `` lines, and the lines under a command are its output:
  the command is retried until its output (stdout and stderr) matches them after normalisation.
  ``<pid of NAME>`` stands for the pid ``attachdaemon -c FILE status --json`` shows for NAME once
  it runs and is ready (FILE: the block's last ``-c``).
- ``text`` blocks after a console block show what its background command printed: each line
  must be in that output after normalisation; the supervisor's own lines
  (``attachdaemon[PID]: …``) in the order shown. A daemon's output lines are read on their own
  pipe, so where they fall among the supervisor's lines is not compared.
- ``json`` blocks are status JSON examples: each must validate against docs/status.schema.json.

Normalisation, applied to the shown and the real output alike: durations ``H:MM:SS`` become
``H:MM:SS``, absolute paths ``/PATH``, every number of two digits or more ``N`` (pids, ports),
and runs of blanks one space (table columns widen with the pids); blank lines are dropped.

A block that needs redis-server or memcached where they are missing is skipped, naming the
program (.ci/run installs both). A block that cannot run here is marked in the Markdown source
with ``<!-- skip: next "reason" -->`` right before it; both are counted (:data:`TALLY`), and
tests/docs/conftest.py prints the count at the end of the run.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import socket
import unittest
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sybil import Document, Example
from sybil.evaluators.skip import Skipper
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.config_file import load_toml
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.procfile import is_procfile
from attachdaemon_core.spec.uwsgi_file import is_uwsgi_file
from tests.docs.project import Project, all_running_and_ready, missing_programs
from tests.helpers.harness import wait_for
from tests.helpers.hosts import REPO, free_port

README = REPO / "README.md"
DOC_PATHS = [README, *sorted((REPO / "docs").glob("*.md"))]
SCHEMA_PATH = REPO / "docs" / "status.schema.json"
RETRY = 30.0  # seconds a command is tried again until it succeeds (daemons starting)
BOOT = 60.0  # seconds a server has to start its daemons and answer

# The reader's own apps, which the README refers to and does not show.
WSGI_APP = """def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from the app\\n"]
"""
ASGI_APP = """async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from the app\\n"})
"""


class MissingProgram(unittest.SkipTest):
    """The block needs a program this machine lacks (redis-server, memcached)."""


@dataclass
class Tally:
    """What happened to the blocks in this run (printed by tests/docs/conftest.py)."""

    ran: int = 0
    marked: int = 0
    missing: list[str] = field(default_factory=list)
    failed: int = 0

    def seen(self) -> bool:
        return bool(self.ran or self.marked or self.missing or self.failed)

    def line(self) -> str:
        parts = [f"docs: {self.ran} blocks run", f"{self.marked} marked not runnable here"]
        if self.missing:
            parts.append(f"{len(self.missing)} skipped for a missing program")
        parts.append(f"{self.failed} failed")
        return ", ".join(parts)


TALLY = Tally()


class DocState:
    """One document's scratch directories and processes, shared by its blocks in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = Project(root)
        self.django: Path | None = None
        self.shell_dir = root / "project"  # TOML files, shell and console blocks
        self.shell_dir.mkdir(parents=True, exist_ok=True)
        self.last_output: str | None = None
        self.last_skip: str | None = None


def state_of(example: Example) -> DocState:
    st = example.namespace.get("state")
    assert isinstance(st, DocState), "the document's DocState was not set up"
    return st


# ---------------------------------------------------------------------- parsing
def language(example: Example) -> str | None:
    lang = example.region.lexemes.get("arguments")
    return str(lang) if lang is not None else None


def is_skip(example: Example) -> bool:
    return isinstance(example.region.evaluator, Skipper)


def label(example: Example) -> str:
    """``python:settings.py``, ``toml:daemons.toml``, ``console``…: a block's kind, for test ids."""
    lang = language(example) or "?"
    first = str(example.parsed).split("\n", 1)[0]
    named = re.match(r"#\s*([\w.]+\.(?:py|toml))\b", first)
    return f"{lang}:{named[1]}" if named else lang


def parse(path: Path) -> Document:
    parsers: list[Callable[[Document], Any]] = [
        SkipParser(),
        CodeBlockParser("python", evaluate_python),
        CodeBlockParser("toml", evaluate_toml),
        CodeBlockParser("ini", evaluate_ini),
        CodeBlockParser("sh", evaluate_sh),
        CodeBlockParser("console", evaluate_console),
        CodeBlockParser("text", evaluate_text),
        CodeBlockParser("json", evaluate_json),
    ]
    return Document.parse(str(path), *parsers)


def fenced_block_starts(path: Path) -> dict[int, str]:
    """Every fenced block of ``path`` (start offset -> its info string), whatever its language."""
    lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE))
    document = Document(path.read_text(), str(path))
    return {region.start: str(region.lexemes["info"]) for region in lexer(document)}


def doc_blocks(path: Path, lang: str) -> list[str]:
    """The sources of ``path``'s blocks in ``lang``, in order."""
    return [str(ex.parsed) for ex in parse(path).examples() if language(ex) == lang]


def readme_block(lang: str, first_line: str) -> str:
    """The one README block in ``lang`` whose first line is ``first_line``, as the README has it."""
    found = [
        str(ex.parsed)
        for ex in parse(README).examples()
        if language(ex) == lang and str(ex.parsed).split("\n", 1)[0] == first_line
    ]
    assert len(found) == 1, f"{len(found)} README {lang} blocks start with {first_line!r}"
    return found[0]


def readme_line(lang: str, pattern: str) -> str:
    """The one line of a README ``lang`` block matching ``pattern`` (a regex)."""
    found = [
        line
        for ex in parse(README).examples()
        if language(ex) == lang
        for line in str(ex.parsed).splitlines()
        if re.search(pattern, line)
    ]
    assert len(found) == 1, f"{len(found)} lines of README {lang} blocks match {pattern!r}: {found}"
    return found[0]


# ---------------------------------------------------------------------- running one block
def run_example(examples: list[Example], index: int) -> None:
    """Evaluate block ``index`` (after the skip mark right before it, if any) and count it."""
    example = examples[index]
    if index > 0 and is_skip(examples[index - 1]):
        examples[index - 1].evaluate()
    try:
        example.evaluate()
    except MissingProgram as exc:
        TALLY.missing.append(str(exc))
        pytest.skip(str(exc))
    except unittest.SkipTest as exc:
        TALLY.marked += 1
        pytest.skip(f"marked not runnable here: {exc}")
    except BaseException:
        TALLY.failed += 1
        raise
    TALLY.ran += 1


# ---------------------------------------------------------------------- normalisation
def normalise(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = re.sub(r"\b\d+:\d\d:\d\d\b", "H:MM:SS", raw)
        line = re.sub(r"(?<![\w.])/[^\s,()]+", "/PATH", line)
        line = re.sub(r"\d{2,}", "N", line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


def log_mismatch(actual: str, shown: str) -> str | None:
    """Why ``actual`` (a server's output) does not show the ``shown`` lines, or None."""
    have = normalise(actual)
    want = normalise(shown)
    missing = [line for line in want if line not in have]
    if missing:
        return f"not in the output: {missing}"
    ours = [line for line in have if line.startswith("attachdaemon[")]
    position = 0
    for line in (w for w in want if w.startswith("attachdaemon[")):
        try:
            position = ours.index(line, position) + 1
        except ValueError:
            return f"out of the order shown: {line!r}"
    return None


# ---------------------------------------------------------------------- python blocks
def evaluate_python(example: Example) -> None:
    source = str(example.parsed)
    named = re.match(r"#\s*([\w.]+\.py)\b", source)
    handlers: dict[str, Callable[[DocState, str], None]] = {
        "settings.py": django_settings,
        "urls.py": django_urls,
        "app.py": flask_app,
        "gunicorn.conf.py": gunicorn_conf,
    }
    assert named and named[1] in handlers, (
        f"a python block starts with a comment naming its file, one of {sorted(handlers)}: {source[:60]!r}"
    )
    handlers[named[1]](state_of(example), source)


def django_project(st: DocState) -> Path:
    if st.django is None:
        where = st.root / "django"
        where.mkdir()
        st.project.run(["django-admin", "startproject", "mysite", str(where)], st.root, check=True)
        st.django = where
    return st.django


def _append(path: Path, source: str) -> None:
    with path.open("a") as f:
        f.write("\n\n" + source)


def django_settings(st: DocState, source: str) -> None:
    where = django_project(st)
    _append(where / "mysite" / "settings.py", source)
    st.project.run(["python", "manage.py", "check"], where, check=True)
    result = st.project.run(["python", "manage.py", "daemons", "check"], where, check=True)
    assert "settings.ATTACH_DAEMONS: OK" in result.stdout, result.stdout


def django_urls(st: DocState, source: str) -> None:
    where = django_project(st)
    _append(where / "mysite" / "urls.py", source)
    st.project.run(["python", "manage.py", "check"], where, check=True)
    show = "from django.urls import reverse; print(reverse('attachdaemon:status'))"
    result = st.project.run(["python", "manage.py", "shell", "-c", show], where, check=True)
    assert "/daemons/" in result.stdout.splitlines(), result.stdout


def flask_app(st: DocState, source: str) -> None:
    where = st.root / "flask"
    where.mkdir(exist_ok=True)
    (where / "app.py").write_text(source)
    result = st.project.run(["flask", "daemons", "check"], where, check=True)
    assert result.stdout.rstrip().endswith(": OK"), result.stdout


def gunicorn_conf(st: DocState, source: str) -> None:
    where = st.root / "gunicorn"
    where.mkdir(exist_ok=True)
    conf = where / "gunicorn.conf.py"
    conf.write_text(source)
    (where / "app.py").write_text(WSGI_APP)
    declared = runpy.run_path(str(conf))["attach_daemons"]
    specs = parse_declarations(declared, base_dir=str(where), source=str(conf))
    missing = missing_programs([os.path.basename(s.command[0]) for s in specs])
    if missing:
        raise MissingProgram(f"needs {', '.join(missing)} (not installed here; .ci/run installs it)")
    st.project.pidfiles += [Path(s.pidfile) for s in specs if s.pidfile]
    names = {s.name for s in specs}
    port = free_port()
    server = st.project.start(
        ["gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app:app"], where, "gunicorn"
    )
    runtime_dir = runtime.runtime_dir_for(str(conf))

    def ready() -> dict[str, Any] | None:
        if server.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited {server.proc.returncode}:\n{server.output()}")
        data: dict[str, Any] = client.call(runtime_dir, "status", timeout=2)
        st.project.note_status(data)
        return data if all_running_and_ready(data, names) else None

    try:
        data = wait_for(ready, BOOT, f"{sorted(names)} running and ready under gunicorn")
        assert "hello from the app" in http_get(port), "gunicorn does not serve the app"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- gunicorn's output:\n{server.output()}") from None
    assert data is not None and st.project.interrupt(server) == 0, server.output()
    stop_and_check(st.project, data)


def stop_and_check(project: Project, data: dict[str, Any]) -> None:
    """After Ctrl-C: the attached daemons and the supervisor are gone; the smart daemons still
    run (by design), and are then stopped by the pid status gave."""
    attached = [d for d in data["daemons"] if d["kind"] == "attached"]
    smart = [d for d in data["daemons"] if d["kind"] != "attached"]
    sup = data["supervisor"]["pid"]
    wait_for(lambda: not project.living(sup), 15, f"the supervisor (pid {sup}) to exit")
    for d in attached:
        wait_for(
            lambda p=d["pid"]: not project.living(p), 15, f"attached {d['name']} (pid {d['pid']}) to stop"
        )
    for d in smart:
        assert project.living(d["pid"]), (
            f"smart daemon {d['name']} (pid {d['pid']}) should outlive the server"
        )
        project.stop_smart(d["pid"], f"smart daemon {d['name']}")


def http_get(port: int, path: str = "/") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


# ---------------------------------------------------------------------- toml and ini blocks
def file_block(comment: str, suffix: str, kind: str) -> Callable[[Example], None]:
    """The evaluator of a block that is a file of declarations named by its first line's comment
    (``# daemons.toml``, ``; uwsgi.ini``): written where the shell blocks run and read as
    ``attachdaemon -c NAME check`` reads it."""
    first_line = re.compile(rf"{re.escape(comment)}\s*([\w.-]+\.{suffix})\b")

    def evaluate(example: Example) -> None:
        st = state_of(example)
        source = str(example.parsed)
        named = first_line.match(source)
        assert named, f"{kind} block starts with a comment naming its file: {source[:60]!r}"
        (st.shell_dir / named[1]).write_text(source)
        result = st.project.run(["attachdaemon", "-c", named[1], "check"], st.shell_dir, check=True)
        assert result.stdout.rstrip().endswith(": OK"), result.stdout

    return evaluate


evaluate_toml = file_block("#", "toml", "a toml")
evaluate_ini = file_block(";", "ini", "an ini")  # a uWSGI config file


# ---------------------------------------------------------------------- shell and console blocks
@dataclass
class Command:
    line: str
    background: bool
    shown: str | None = None  # the output shown under it (console blocks), None: not shown


def _command(line: str) -> Command:
    code = re.sub(r"\s+#.*$", "", line).rstrip()
    if code.endswith("&") and not code.endswith("&&"):
        return Command(code[:-1].rstrip(), background=True)
    return Command(code, background=False)


def sh_commands(source: str) -> list[Command]:
    return [
        _command(line) for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def console_commands(source: str) -> list[Command]:
    commands: list[Command] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            commands.append(_command(line[2:]))
        else:
            assert commands, f"console output before any $ command: {line!r}"
            commands[-1].shown = (commands[-1].shown or "") + line + "\n"
    return commands


def evaluate_sh(example: Example) -> None:
    run_commands(state_of(example), sh_commands(str(example.parsed)))


def evaluate_console(example: Example) -> None:
    run_commands(state_of(example), console_commands(str(example.parsed)))


CONFIG_RE = re.compile(r"\battachdaemon\b.*?\s(?:-c|--config)[ =]?(\S+)")


def _configs(commands: list[Command]) -> list[str]:
    found = [m[1] for c in commands if (m := CONFIG_RE.search(c.line))]
    # `attachdaemon migrate FILE` reads FILE and writes files (docs/migrate.md): no config file
    if any(re.match(r"attachdaemon\b(?!\s+migrate\b)", c.line) for c in commands) and not found:
        found.append("attachdaemon.toml")
    return list(dict.fromkeys(found))


def _config_specs(path: Path) -> tuple[Any, ...]:
    """The specs of a ``-c`` file: a TOML file, a uWSGI file read from its directory, or a Procfile
    (docs/procfile.md)."""
    if is_uwsgi_file(str(path)) or is_procfile(str(path)):
        return parse_declarations(str(path), base_dir=str(path.parent), source=str(path))
    return load_toml(str(path)).specs


def run_commands(st: DocState, commands: list[Command]) -> None:
    st.last_output, st.last_skip = None, None
    cwd = st.shell_dir
    configs = _configs(commands)
    programs: list[str] = []
    for config in configs:
        assert (cwd / config).exists(), f"{config} is not written by an earlier block of this document"
        specs = _config_specs(cwd / config)
        programs += [os.path.basename(s.command[0]) for s in specs]
        st.project.pidfiles += [Path(s.pidfile) for s in specs if s.pidfile]
    missing = missing_programs(programs)
    if missing:
        st.last_skip = f"needs {', '.join(sorted(set(missing)))} (not installed here; .ci/run installs it)"
        raise MissingProgram(st.last_skip)
    if any(re.search(r"\buvicorn app:app\b", c.line) for c in commands) and not (cwd / "app.py").exists():
        (cwd / "app.py").write_text(ASGI_APP)
    background = []
    problems = []
    try:
        for command in commands:
            line = _placeholders(st, command.line, configs)
            if command.background:
                background.append(st.project.start(["bash", "-c", f"exec {line}"], cwd, "background"))
            else:
                _until_shown(st, line, command.shown, background)
        for config in configs:  # what runs now, for the cleanup (smart daemons outlive us)
            st.project.status_json(["attachdaemon", "-c", config, "status", "--json"], cwd)
    finally:
        for server in background:
            code = st.project.interrupt(server)
            if code != 0:
                problems.append(f"{' '.join(server.argv)} exited {code} on Ctrl-C:\n{server.output()}")
        st.last_output = "".join(server.output() for server in background)
    assert not problems, problems
    for config in configs:
        wait_for(
            lambda c=config: (
                st.project.status_json(["attachdaemon", "-c", c, "status", "--json"], cwd)[0] == 4
            ),
            15,
            f"no supervisor left for {config}",
        )
    attached = [p for p, (_, what) in st.project.shown.items() if "(attached)" in what]
    wait_for(lambda: not [p for p in attached if st.project.living(p)], 15, "the attached daemons to be gone")


def _placeholders(st: DocState, line: str, configs: list[str]) -> str:
    def pid_of(match: re.Match[str]) -> str:
        name = match[1]
        config = configs[-1] if configs else "attachdaemon.toml"

        def running() -> int | None:
            _, data = st.project.status_json(["attachdaemon", "-c", config, "status", "--json"], st.shell_dir)
            for d in data.get("daemons", []):
                if d["name"] == name and d["state"] == "running" and d["ready"]:
                    return int(d["pid"])
            return None

        return str(wait_for(running, RETRY, f"{name} running and ready, for <pid of {name}>"))

    return re.sub(r"<pid of ([\w.-]+)>", pid_of, line)


def _until_shown(st: DocState, line: str, shown: str | None, background: list[Any]) -> None:
    last: list[str] = []

    def attempt() -> bool:
        result = st.project.shell(line, st.shell_dir, timeout=RETRY)
        last[:] = [f"exit {result.returncode}", result.stdout]
        if result.returncode != 0:
            return False
        return shown is None or normalise(result.stdout) == normalise(shown)

    try:
        wait_for(
            attempt, RETRY, f"`{line}` to succeed" + (" and show what the block shows" if shown else ""), 0.2
        )
    except AssertionError:
        bg = "".join(s.output() for s in background)
        raise AssertionError(
            f"`{line}` never succeeded{' with the output shown' if shown else ''} in {RETRY:g}s\n"
            f"--- last: {last[0] if last else '-'}\n{last[1] if last else ''}"
            f"--- shown:\n{shown or '(none)'}\n--- normalised, got: {normalise(last[1]) if last else []}\n"
            f"--- normalised, shown: {normalise(shown or '')}\n--- background output:\n{bg}"
        ) from None


# ---------------------------------------------------------------------- text and json blocks
def evaluate_text(example: Example) -> None:
    st = state_of(example)
    if st.last_skip is not None:
        raise MissingProgram(st.last_skip)
    assert st.last_output is not None, (
        "a text block shows the output of the console block before it: none ran"
    )
    problem = log_mismatch(st.last_output, str(example.parsed))
    assert problem is None, f"{problem}\n--- the output:\n{st.last_output}"


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return data


def evaluate_json(example: Example) -> None:
    jsonschema.validate(json.loads(str(example.parsed)), schema(), cls=jsonschema.Draft202012Validator)
