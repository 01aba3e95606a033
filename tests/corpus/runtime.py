"""Run corpus lines for real: their paths moved under a temp dir, their programs replaced by
stand-ins (tests/helpers/standin.py) that behave as the real program would for that argv.

- Every absolute path of a line is moved under ``<tmp>/fs`` (so ``/var/run/celery/w.pid`` becomes
  ``<tmp>/fs/var/run/celery/w.pid``), its directory created.
- A program named by path gets a stand-in at the moved path; a bare program name gets one in
  ``<tmp>/bin``, first on the daemons' PATH.
- A ``launcher-script`` line's program becomes an ``sh`` script that starts the stand-in daemon
  in the background (double fork) naming the line's pidfile; a ``console-script`` line's becomes a
  Python script running the stand-in, as pip's console scripts run their entry point.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import DaemonSpec
from attachdaemon_core.spec.uwsgi_lines import split_option
from tests.corpus.uwsgi_lines import CorpusLine, corpus_env
from tests.helpers.standin import standin_id

# Filled by the runtime tests, printed at the end of the run by tests/corpus/conftest.py.
RESULTS: dict[str, int] = {}

STANDIN = str(Path(__file__).resolve().parent.parent / "helpers" / "standin.py")
_ABS_PATH = re.compile(r"(?<![\w.$%@)])/(?:[\w.@+-]+/?)+")


@dataclass(frozen=True)
class Prepared:
    """A corpus line ready to run: relocated, parsed, its program a stand-in."""

    line: str  # the relocated line (what uWSGI is given)
    spec: DaemonSpec  # what our supervisor is given
    ident: str  # the id the daemon's stand-in records under
    shape: str
    bindir: Path


def prepare(entries: Sequence[CorpusLine], tmp: Path, *, tagged: bool = True) -> list[Prepared]:
    """Relocate each line under its own ``tmp/lN`` (two lines naming one path must not share
    it), parse them together (so names are unique), and install their stand-ins. ``tagged``:
    each line's daemon records under its own tag (given in its environment, which uWSGI lines
    cannot carry: without tags, give lines of distinct commands)."""
    lines = [relocate(c.line, tmp / f"l{i}") for i, c in enumerate(entries)]
    with corpus_env():
        specs = parse_declarations(lines, base_dir=str(tmp))
    out = []
    for i, (c, line, spec) in enumerate(zip(entries, lines, specs, strict=True)):
        assert c.shape is not None
        tag = f"l{i}:" if tagged else ""
        run, ident = install_standin(spec, c.shape, tmp / f"l{i}", tmp / "events.log", tag)
        if run.cwd is None:
            run = replace(run, cwd=str(tmp))  # uWSGI's daemons start in the master's cwd
        # The stand-ins live under the test's private temp dir, which another uid cannot reach;
        # a legion's lock is tested in tests/leader (two lines of one legion would take turns).
        run = replace(run, user=None, group=None, leader=None)
        out.append(Prepared(line, run, ident, c.shape, tmp / f"l{i}" / "bin"))
    return out


def relocate(line: str, tmp: Path) -> str:
    """``line`` with every absolute path moved under ``tmp/fs`` (directories created)."""
    option, value = split_option(line)
    fs = tmp / "fs"

    def moved(m: re.Match[str]) -> str:
        path = m.group(0)
        if path.startswith(("/bin/", "/usr/bin/env")) and os.path.basename(path) in ("sh", "bash", "env"):
            return path  # the system shell stays itself
        target = fs / path.lstrip("/")
        (target.parent if not path.endswith("/") else target).mkdir(parents=True, exist_ok=True)
        return str(target) + ("/" if path.endswith("/") else "")

    return f"{option} = {_ABS_PATH.sub(moved, value)}"


def program_of(spec: DaemonSpec) -> tuple[str, list[str]]:
    """The program a spec runs, and its arguments (through ``sh -c "exec …"`` too)."""
    if spec.shell:
        words = shlex.split(spec.command[-1])
        while words and (words[0] == "exec" or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
            words = words[1:]
        args, skip = [], False
        for word in words[1:]:  # redirections are the shell's, not the program's arguments
            op = re.match(r"^\d*(>>|>|<)(&\d+)?", word)
            if skip:
                skip = False
            elif op:
                skip = op.end() == len(word) and not op.group(2)
            else:
                args.append(word)
        return words[0], args
    return spec.command[0], list(spec.command[1:])


def _write_exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def install_standin(
    spec: DaemonSpec, shape: str, tmp: Path, events: Path, tag: str = ""
) -> tuple[DaemonSpec, str]:
    """Create the stand-in for ``spec``'s program (bare names in ``tmp/bin``); return the spec to
    run (bare programs made absolute, PATH pointed at the stand-ins, events to ``events``) and the
    id its daemon process records under."""
    program, args = program_of(spec)
    bindir = tmp / "bin"
    where = Path(program) if os.sep in program else bindir / program
    env = dict(spec.env)
    env["PATH"] = f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env["STANDIN_EVENTS"] = str(events)
    if tag:
        env["STANDIN_TAG"] = tag
    if shape == "launcher-script":
        daemon = bindir / f"{where.name}-daemon"
        _write_exe(daemon, f"#!{sys.executable}\n" + Path(STANDIN).read_text())
        pidfile = spec.pidfile or str(tmp / f"{where.name}.pid")
        daemon_argv = [str(daemon), "--daemonize", f"--pidfile={pidfile}"]
        _write_exe(where, "#!/bin/sh\n" + shlex.join(daemon_argv) + "\n")
        ident = standin_id([daemon.name, *daemon_argv[1:]], tag)
    elif shape == "console-script":
        # As pip writes one: import the entry point's module, call it with this script's argv.
        _write_exe(
            where,
            f"#!{sys.executable}\nimport os, sys\nsys.path.insert(0, {os.path.dirname(STANDIN)!r})\n"
            "from standin import main\nsys.exit(main([os.path.basename(sys.argv[0]), *sys.argv[1:]]))\n",
        )
        ident = standin_id([where.name, *args], tag)
    else:
        _write_exe(where, f"#!{sys.executable}\n" + Path(STANDIN).read_text())
        ident = standin_id([where.name, *args], tag)
    command = spec.command
    if not spec.shell and os.sep not in program:
        command = (str(where), *spec.command[1:])
    return replace(spec, command=command, env=tuple(sorted(env.items()))), ident
