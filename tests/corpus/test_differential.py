"""uWSGI itself as the oracle: the same corpus lines, on the same stand-in programs, under
`uwsgi --master` (the pyuwsgi wheel, 2.0.30) and under `attachdaemon run`.

After start, after each daemon is SIGKILLed, after a reload and after a stop, the two runs must
leave the same daemons running: one copy of each, a new one after the kill, a new one after the
reload for attached lines and the same one for smart lines, none after the stop for attached lines
and the same one for smart lines. A difference is allowed only where INTENTIONAL names it (each is
in docs/uwsgi-differences.md); any other is a bug, in one direction or the other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.corpus import runtime
from tests.corpus.uwsgi_lines import CORPUS_ENV, LINES, CorpusLine
from tests.helpers.harness import PY, Events, Sandbox, alive, wait_for

BIN = os.path.dirname(sys.executable)
UWSGI = shutil.which("uwsgi", path=BIN)
SUBREAPER = str(Path(__file__).resolve().parent.parent / "helpers" / "subreaper.py")
pytestmark = pytest.mark.skipif(UWSGI is None, reason="pyuwsgi is not installed: pip install -e '.[dev]'")

# (kind, phase) -> (what uWSGI may show there instead of what we show, why). Each is in
# docs/uwsgi-differences.md, "How the list is checked". Observations: after start, the number of
# live copies; after a kill or a reload, (live copies, a new pid?); after a stop, (live copies,
# the same pid?).
UWSGI_SMART_RACE = (
    "uWSGI 2.0.30 restarts a killed smart daemon only if it reaped the launcher before its "
    "once-a-second pidfile check saw the daemon's pid (core/daemons.c, has_daemonized); when the "
    "check wins it logs 'did not daemonize !!!' every `freq` seconds and never restarts it (its "
    "next reload starts it again). attachdaemon sees the death through a pidfd and restarts at once."
)
INTENTIONAL: dict[tuple[str, str], tuple[set[object], str]] = {
    ("smart", "kill"): ({(0, False)}, UWSGI_SMART_RACE),
    ("smart", "reload"): ({(1, True)}, UWSGI_SMART_RACE),
}
PHASES = ("start", "kill", "reload", "stop")


def differential_lines(per_shape: int = 3) -> list[CorpusLine]:
    """Up to ``per_shape`` runnable lines of each shape whose program is not one the test venv
    also has (our supervisor looks in the app's virtualenv first, uWSGI only in PATH), each a
    distinct command (the stand-ins tell daemons apart by their argv)."""
    chosen: list[CorpusLine] = []
    seen: set[str] = set()
    taken: dict[str, int] = {}
    for c in LINES:
        if c.shape is None or c.expect is None or c.line.startswith("legion-"):
            continue  # (pyuwsgi is built without the legion subsystem)
        if {"user", "group", "leader"} & set(c.expect) or taken.get(c.shape, 0) >= per_shape:
            continue  # the stand-ins live under a temp dir another uid cannot reach
        command = c.expect.get("command")
        words = [str(w) for w in command] if isinstance(command, list) else str(command or "").split()
        if words[:2] == ["/bin/sh", "-c"]:
            words = [w for w in words[2].split() if w != "exec" and "=" not in w]
        program = os.path.basename(words[0]) if words else ""
        # The stand-ins' id: the program's basename and the arguments. A launcher script is
        # written per line, so two of one name would find each other on PATH: one per name.
        key = " ".join([program, *words[1:]]) if c.shape != "launcher-script" else program
        if program in os.listdir(BIN) or key in seen:
            continue
        seen.add(key)
        taken[c.shape] = taken.get(c.shape, 0) + 1
        chosen.append(c)
    return chosen


@dataclass
class Observed:
    """What one system did with each line, phase by phase."""

    events: Events
    idents: dict[str, str]
    smart: dict[str, bool]
    seen: dict[tuple[str, str], object] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def live(self, line: str) -> list[int]:
        return [p for p in self.events.starts(self.idents[line]) if alive(p)]


def settle(predicate: Callable[[], object], timeout: float) -> bool:
    try:
        wait_for(predicate, timeout, "the system to settle", interval=0.05)
    except AssertionError:
        return False
    return True


def run_phases(
    obs: Observed,
    lines: list[str],
    reload: Callable[[], None],
    stop: Callable[[], None],
    stopped: Callable[[], bool],
) -> None:
    one_each = lambda: all(len(obs.live(x)) >= 1 for x in lines)  # noqa: E731
    settle(one_each, 40)
    time.sleep(1.5)  # quiet window (not synchronisation): a duplicate would appear here
    for x in lines:
        live = obs.live(x)
        obs.seen[(x, "start")] = len(live)
        obs.pids[x] = live[0] if live else -1
    for x in lines:
        if obs.pids[x] > 0:
            os.kill(obs.pids[x], signal.SIGKILL)
    # uWSGI restarts within a second or two, or not at all (INTENTIONAL): 10 s tells them apart.
    settle(lambda: all(any(p != obs.pids[x] for p in obs.live(x)) for x in lines), 10)
    time.sleep(1.5)  # quiet window: a second copy would appear here
    for x in lines:
        live = obs.live(x)
        obs.seen[(x, "kill")] = (len(live), bool(live) and live[0] != obs.pids[x])
        obs.pids[x] = live[0] if live else -1
    reload()
    attached = [x for x in lines if not obs.smart[x]]
    settle(lambda: all(any(p != obs.pids[x] for p in obs.live(x)) for x in attached), 40)
    time.sleep(2.0)  # quiet window: uWSGI checks smart pidfiles once a second
    for x in lines:
        live = obs.live(x)
        obs.seen[(x, "reload")] = (len(live), bool(live) and live[0] != obs.pids[x])
        obs.pids[x] = live[0] if live else -1
    stop()
    settle(stopped, 40)
    time.sleep(1.5)  # quiet window: nothing may come back after the stop
    for x in lines:
        live = obs.live(x)
        obs.seen[(x, "stop")] = (len(live), bool(live) and live[0] == obs.pids[x])


def observe(system: str, corpus: list[CorpusLine], tmp: Path, sandbox: Sandbox) -> Observed:
    """Run every line under ``system`` (uwsgi or attachdaemon) through the four phases."""
    tmp.mkdir()
    prepared = runtime.prepare(corpus, tmp, tagged=False)
    lines = [p.line for p in prepared]
    bindirs = ":".join(str(p.bindir) for p in prepared)
    env = {
        **os.environ,
        **CORPUS_ENV,
        "PATH": f"{bindirs}:{os.environ['PATH']}",
        "STANDIN_EVENTS": str(tmp / "events.log"),
    }
    obs = Observed(
        Events(tmp / "events.log"),
        {p.line: p.ident for p in prepared},
        {p.line: p.spec.pidfile is not None for p in prepared},
    )
    if system == "uwsgi":
        proc = start_uwsgi(tmp, lines, env)
        master = wait_for(lambda: _pid_in(tmp / "master.pid"), 30, "uWSGI master pidfile")
        controls = (
            lambda: os.kill(master, signal.SIGHUP),  # graceful reload
            lambda: os.kill(master, signal.SIGINT),  # stop
            lambda: not alive(master),  # its wrapper stays while smart daemons (its orphans) live
        )
    else:
        proc = start_attachdaemon(tmp, lines, env, sandbox.runtime_dir)
        controls = (
            lambda: proc.send_signal(signal.SIGHUP),  # reload: the file read again
            lambda: proc.send_signal(signal.SIGTERM),
            lambda: proc.poll() is not None,
        )
    try:
        run_phases(obs, lines, *controls)
    finally:
        sandbox.extra_pids |= obs.events.all_pids()
        sandbox._end_recorded()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return obs


@pytest.mark.timeout(300)
def test_corpus_lines_behave_as_under_uwsgi(sandbox: Sandbox, tmp_path: Path) -> None:
    corpus = differential_lines()
    assert len(corpus) >= 10, f"only {len(corpus)} corpus lines can run under both"
    results = {
        system: observe(system, corpus, tmp_path / system, sandbox) for system in ("uwsgi", "attachdaemon")
    }
    smart_flags = list(results["attachdaemon"].smart.values())
    unexplained, intentional = [], 0
    for i, c in enumerate(corpus):
        kind = "smart" if smart_flags[i] else "attached"
        expected = {
            "start": 1,
            "kill": (1, True),
            "reload": (1, kind == "attached"),
            "stop": (1, True) if kind == "smart" else (0, False),
        }
        ours_line = list(results["attachdaemon"].idents)[i]
        theirs_line = list(results["uwsgi"].idents)[i]
        for phase in PHASES:
            ours = results["attachdaemon"].seen[(ours_line, phase)]
            theirs = results["uwsgi"].seen[(theirs_line, phase)]
            where = f"{c.line!r} ({c.shape}) after {phase}"
            if ours != expected[phase]:
                unexplained.append(f"{where}: ours {ours}, expected {expected[phase]}")
            allowed, _why = INTENTIONAL.get((kind, phase), (set(), ""))
            if ours != theirs and theirs not in allowed:
                unexplained.append(f"{where}: uWSGI {theirs}, ours {ours}")
            intentional += ours != theirs and theirs in allowed
    runtime.RESULTS["differential_lines"] = len(corpus)
    runtime.RESULTS["differential_observations"] = len(corpus) * len(PHASES)
    runtime.RESULTS["differential_intentional"] = intentional
    runtime.RESULTS["differential_unexplained"] = len(unexplained)
    assert not unexplained, "\n".join(unexplained)


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start_uwsgi(tmp: Path, lines: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    app = tmp / "app.py"
    app.write_text(
        "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n"
    )
    ini = [
        "[uwsgi]",
        "master = true",
        "socket = 127.0.0.1:0",
        f"wsgi-file = {app}",
        "processes = 1",
        f"binary-path = {os.path.join(BIN, 'python3')}",  # the re-exec on reload needs it (pyuwsgi)
        f"pidfile = {tmp / 'master.pid'}",
        f"logto = {tmp / 'uwsgi.log'}",
        *lines,
    ]
    (tmp / "uwsgi.ini").write_text("\n".join(ini) + "\n")
    assert UWSGI is not None
    return subprocess.Popen(
        [PY, SUBREAPER, UWSGI, "--ini", str(tmp / "uwsgi.ini")],
        env=env,
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_attachdaemon(tmp: Path, lines: list[str], env: dict[str, str], rt: str) -> subprocess.Popen[bytes]:
    toml = tmp / "daemons.toml"
    quoted = ",\n".join("  " + _toml_str(line) for line in lines)
    toml.write_text(f"runtime_dir = {_toml_str(rt)}\nuwsgi = [\n{quoted}\n]\n")
    return subprocess.Popen(
        [os.path.join(BIN, "attachdaemon"), "-c", str(toml), "run"],
        env=env,
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string
