"""The ``attachdaemon`` command against a TOML file: check, run, status, start/stop/restart, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from attachdaemon_core.osproc import proc
from tests.helpers.harness import PROBE, PY, Events, alive, wait_for
from tests.helpers.import_blocker import (
    LEADER_BACKENDS,
    assert_missing_clients_named,
    blocker_dir,
    pythonpath_with,
)
from tests.helpers.status_json import check_status_json

CLI = [sys.executable, "-m", "attachdaemon_core"]


class Run:
    """``attachdaemon run`` as a real foreground process, plus helpers to call the CLI."""

    def __init__(self, tmp: Path, toml: str) -> None:
        self.tmp = tmp
        self.config = tmp / "attachdaemon.toml"
        self.config.write_text(toml)
        self.runtime_dir = Path("/tmp") / f"adcli-{os.getpid()}-{abs(hash(str(tmp))) % 10**6}"
        self.env = {**os.environ, "ATTACH_DAEMONS_RUNTIME_DIR": str(self.runtime_dir)}
        self.proc: subprocess.Popen[str] | None = None
        self.events = Events(tmp / "events.log")

    def start(
        self, *extra: str, config_after_verb: bool = False, stdin: int | None = None
    ) -> subprocess.Popen[str]:
        config = ["-c", str(self.config)]
        argv = ["run", *config, *extra] if config_after_verb else [*config, "run", *extra]
        with open(self.tmp / "run.out", "ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, *argv],
                env=self.env,
                text=True,
                stdin=stdin,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        return self.proc

    def cli(self, *args: str, config: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *(["-c", str(self.config)] if config else []), *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=20,
            check=False,
        )

    def status(self) -> dict:  # type: ignore[type-arg]
        out = self.cli("status", "--json")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def daemon(self, name: str) -> dict:  # type: ignore[type-arg]
        return next(d for d in self.status()["daemons"] if d["name"] == name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        for pid in self.events.all_pids():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(p) for p in self.events.all_pids()), 5, "probes gone")
        subprocess.run(["rm", "-rf", str(self.runtime_dir)], check=False)


def probe_toml(events: Path, name: str, *opts: str) -> str:
    cmd = json.dumps([PY, PROBE, str(events), name, *opts])
    return f"[daemons.{name}]\ncommand = {cmd}\n"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runs: list[Run] = []

    def make(toml: str) -> Run:
        r = Run(tmp_path, toml)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.stop()


def test_check__valid_file__exit_0(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('uwsgi = ["attach-daemon = sleep 100"]\n')
    out = subprocess.run(
        [*CLI, "-c", str(tmp_path / "a.toml"), "check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "1 daemon(s) declared" in out.stdout and out.stdout.rstrip().endswith("OK")


def test_check__bad_file__every_problem_named_exit_1(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        '[daemons.web]\ncommand = "sleep 1"\nstop_signal = "SIGFOO"\ndaemonize = "yes"\n'
    )
    out = subprocess.run(
        [*CLI, "-c", str(tmp_path / "a.toml"), "check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 1
    assert "daemon 'web', key 'stop_signal'" in out.stderr and "daemon 'web', key 'daemonize'" in out.stderr
    assert "Traceback" not in out.stderr


def test_check_and_run__leader_client_packages_missing__refused_naming_daemon_key_and_extra(run) -> None:  # type: ignore[no-untyped-def]
    r = run("".join(
        f'[daemons.{name}]\ncommand = ["sleep", "1000"]\nleader = {{lock = "{name}", backend = "{url}"}}\n'
        for name, url in LEADER_BACKENDS.items()
    ))  # fmt: skip
    blocker = blocker_dir(r.tmp / "blocker", "redis", "psycopg")  # as if neither were installed
    r.env["PYTHONPATH"] = pythonpath_with(blocker, r.env.get("PYTHONPATH"))
    check = r.cli("check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert_missing_clients_named(check.stderr)
    p = r.start()
    assert p.wait(20) == 1
    assert_missing_clients_named((r.tmp / "run.out").read_text())
    assert r.cli("status").returncode == 4, "nothing may have been started"


def test_status__no_supervisor__exit_4_with_the_directory(run) -> None:  # type: ignore[no-untyped-def]
    r = run(probe_toml(Path("/nonexistent"), "a"))
    out = r.cli("status")
    assert out.returncode == 4
    assert f"no supervisor answered within 2s in {r.runtime_dir}" in out.stderr


def test_status_json__no_supervisor__one_json_object_with_the_reason_exit_4(run) -> None:  # type: ignore[no-untyped-def]
    r = run(probe_toml(Path("/nonexistent"), "a"))
    out = r.cli("status", "--json")
    assert out.returncode == 4
    data = json.loads(out.stdout)
    assert data["supervisor"] is None and data["runtime_dir"] == str(r.runtime_dir), data
    assert f"no supervisor answered within 2s in {r.runtime_dir}" in data["error"], data
    assert f"no supervisor answered within 2s in {r.runtime_dir}" in out.stderr


def test_global_options_after_the_verb__same_as_before_it(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    after = r.cli("check", "--config", str(r.config), config=False)
    assert after.returncode == 0, after.stderr
    assert f"1 daemon(s) declared in {r.config}: OK" in after.stdout
    before = r.cli("check")  # -c before the verb: kept, not overwritten by a default after it
    assert (before.returncode, before.stdout) == (0, after.stdout), before.stderr
    both = r.cli("-c", str(r.tmp / "missing.toml"), "check", "-c", str(r.config), config=False)
    assert (both.returncode, both.stdout) == (0, after.stdout), both.stderr
    p = r.start(config_after_verb=True)  # attachdaemon run -c FILE
    a = wait_for(lambda: r.events.starts("a"), 10, "a up")[0]
    status = r.cli("status", "-c", str(r.config), "--json", config=False)
    assert status.returncode == 0, status.stderr
    check_status_json(json.loads(status.stdout))
    assert json.loads(status.stdout)["supervisor"]["owners"] == [p.pid]
    # `-c FILE status --json` is answered without the argument parser (hosts/cli.py): the same
    # answer and exit code as the spelling the full parser takes
    plain = r.cli("status", "--json")
    assert (plain.returncode, json.loads(plain.stdout)) == (0, json.loads(status.stdout)), plain.stderr
    for table in (r.cli("status"), r.cli("status", "-c", str(r.config), config=False)):
        row = table.stdout.splitlines()[2].split()
        assert (table.returncode, row[:3]) == (0, ["a", "attached", "running"]), table.stdout
    logs = r.cli("logs", "a", "--config", str(r.config), "-n", "1", config=False)
    assert logs.returncode == 0, logs.stderr
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert not alive(a)


def test_run__status_table_json_and_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(
        probe_toml(r.events.path, "a")
        + probe_toml(r.events.path, "b")
        + "[daemons.broken]\ncommand = \"sh -c 'exit 2'\"\nmax_retries = 1\nmax_backoff = 0.1\n"
    )
    r.start()
    wait_for(lambda: len(r.events.starts("a")) == 1 and r.events.starts("b"), 10, "a and b up")
    wait_for(lambda: r.daemon("broken")["state"] == "fatal", 10, "broken fatal")
    table = r.cli("status")
    assert table.returncode == 3
    header = table.stdout.splitlines()[1].split()
    assert header == ["NAME", "KIND", "STATE", "PID", "UPTIME", "RESTARTS", "READY"]
    assert any(line.split()[:3] == ["a", "attached", "running"] for line in table.stdout.splitlines())
    status = r.status()
    check_status_json(status)
    assert status["supervisor"]["owners"] == [r.proc.pid]
    assert r.cli("stop", "broken").returncode == 0
    assert r.cli("status").returncode == 0, "a daemon stopped by command is healthy"
    assert r.cli("stop", "nope").returncode == 1


def test_run__stop_start_restart_logs(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(
        probe_toml(r.events.path, "a")
        + '[daemons.echo]\ncommand = ["sh", "-c", "echo one; echo two; exec sleep 1000"]\n'
    )
    r.start()
    a = wait_for(lambda: r.events.starts("a"), 10, "a up")[0]
    assert r.cli("stop", "a").returncode == 0
    wait_for(lambda: not alive(a), 5, "a stopped")
    assert r.daemon("a")["state"] == "stopped"
    assert r.cli("start", "a").returncode == 0
    wait_for(lambda: len(r.events.starts("a")) == 2, 5, "a started")
    logs = wait_for(
        lambda: (o := r.cli("logs", "echo", "-n", "5")).stdout.split() == ["one", "two"] and o, 5, "logs"
    )
    assert logs.returncode == 0
    assert r.cli("restart", "--all").returncode == 0
    wait_for(lambda: len(r.events.starts("a")) == 3, 5, "a restarted")
    wait_for(
        lambda: r.cli("logs", "echo", "-n", "3").stdout.split() == ["two", "one", "two"],
        5,
        "logs after restart",
    )


def test_run__sighup_rereads_the_file_sigterm_stops_attached(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    p = r.start()
    a = wait_for(lambda: r.events.starts("a"), 10, "a up")[0]
    r.config.write_text(probe_toml(r.events.path, "a") + probe_toml(r.events.path, "b"))
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: r.events.starts("b"), 5, "b added by the reload")
    wait_for(lambda: len(r.events.starts("a")) == 2, 5, "a restarted (on_reload: restart)")
    a2, b = r.events.starts("a")[1], r.events.starts("b")[0]
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert not alive(a) and not alive(a2) and not alive(b)


def test_run__sighup_while_the_guard_respawns_the_supervisor__reload_lands_release_happens(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    p = r.start()
    wait_for(lambda: r.events.starts("a"), 10, "a up")
    sup = r.status()["supervisor"]["pid"]
    st = proc.stat(sup)
    assert st is not None
    guard = st.ppid
    r.config.write_text(probe_toml(r.events.path, "a") + probe_toml(r.events.path, "b"))
    os.kill(sup, signal.SIGKILL)  # the guard starts it again within a second...
    p.send_signal(signal.SIGHUP)  # ...and the reload arrives while nothing answers
    wait_for(lambda: r.events.starts("b"), 10, "b started by the reload, sent to the respawned supervisor")
    assert p.poll() is None, (r.tmp / "run.out").read_text()
    new = r.status()["supervisor"]
    assert new["pid"] != sup and new["owners"] == [p.pid], new
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0, (r.tmp / "run.out").read_text()
    wait_for(lambda: not alive(new["pid"]) and not alive(guard), 10, "the supervisor and its guard gone")
    pids = r.events.all_pids()
    wait_for(lambda: not any(alive(x) for x in pids), 5, "every daemon stopped")
    assert "Traceback" not in (r.tmp / "run.out").read_text()


def test_run_with_command__exits_with_its_status_and_stops_daemons(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    flag = r.tmp / "go"
    p = r.start(
        "--",
        PY,
        "-c",
        f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.01)\nraise SystemExit(7)",
    )
    a = wait_for(lambda: r.events.starts("a"), 10, "a up")[0]
    flag.write_text("")
    assert p.wait(15) == 7
    assert not alive(a)


def test_run__stdin_true__the_daemon_reads_the_servers_stdin_others_get_dev_null(run) -> None:  # type: ignore[no-untyped-def]
    # docs/declarations.md, `stdin`: the server's fd 0 instead of /dev/null (uWSGI's stdin=1).
    r = run("")
    read = "import sys; line = sys.stdin.readline(); open({!r}, 'w').write(repr(line))"
    fed, deaf = r.tmp / "fed.out", r.tmp / "deaf.out"
    r.config.write_text(
        f"[daemons.fed]\ncommand = {json.dumps([PY, '-c', read.format(str(fed))])}\n"
        'stdin = true\nrestart = "never"\n'
        f"[daemons.deaf]\ncommand = {json.dumps([PY, '-c', read.format(str(deaf))])}\n"
        'restart = "never"\n'
    )
    feed_r, feed_w = os.pipe()
    try:
        r.start(stdin=feed_r)
    finally:
        os.close(feed_r)
    try:
        wait_for(lambda: deaf.exists() and deaf.read_text(), 10, "deaf read its stdin")
        assert deaf.read_text() == "''", "a daemon without stdin reads /dev/null"
        os.write(feed_w, b"hello from the server\n")
        wait_for(lambda: fed.exists() and fed.read_text(), 10, "fed read its stdin")
    finally:
        os.close(feed_w)
    assert fed.read_text() == repr("hello from the server\n")


def test_run__sigkilled__attached_daemons_stopped(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    p = r.start()
    a = wait_for(lambda: r.events.starts("a"), 10, "a up")[0]
    p.kill()
    p.wait()
    wait_for(lambda: not alive(a), 3, "a stopped after run was SIGKILLed")
    assert r.cli("status").returncode == 4


def status_elsewhere(tmp: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``status`` for a config whose key misses every supervisor: it reads the index."""
    other = tmp / "other.toml"
    other.write_text("")
    return subprocess.run(
        [*CLI, "-c", str(other), "status"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in env.items() if k != "ATTACH_DAEMONS_RUNTIME_DIR"},
    )


def test_status__key_misses__lists_the_supervisors_that_run(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    r.config.write_text(probe_toml(r.events.path, "a"))
    r.start()
    wait_for(lambda: r.events.starts("a"), 10, "a up")
    out = status_elsewhere(tmp_path, os.environ)
    assert out.returncode == 4
    assert "supervisors recorded for this user:" in out.stderr and str(r.runtime_dir) in out.stderr


def test_status__an_exited_supervisors_index_entry_is_removed_a_live_ones_kept(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    xdg = tmp_path / "xdg"  # a private user root: the index holds this test's supervisor only
    xdg.mkdir(mode=0o700)
    r.env["XDG_RUNTIME_DIR"] = str(xdg)
    index = xdg / f"attachdaemon-{os.geteuid()}" / "index"
    r.config.write_text(probe_toml(r.events.path, "a"))
    p = r.start()
    wait_for(lambda: r.events.starts("a"), 10, "a up")
    (entry,) = wait_for(lambda: list(index.glob("*.json")), 10, "the supervisor's index entry")
    sup = json.loads(entry.read_text())["pid"]
    miss = status_elsewhere(tmp_path, r.env)
    assert miss.returncode == 4
    assert f"pid {sup}: {r.runtime_dir}" in miss.stderr
    assert entry.exists(), "a live supervisor's entry is kept"
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    wait_for(lambda: not alive(sup), 10, "the supervisor exited")
    assert entry.exists(), "the supervisor leaves its entry behind (else this test proves nothing)"
    after = r.cli("status")
    assert after.returncode == 4
    assert "supervisors recorded" not in after.stderr
    assert list(index.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(), reason="needs root and unshare"
)
def test_run_as_pid_1__graceful_stop_also_stops_smart_daemons(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    smart2 = (
        f"[daemons.s2]\ncommand = {json.dumps([PY, PROBE, str(r.events.path), 's2'])}\n"
        f'pidfile = "{r.tmp}/s2.pid"\ndaemonize = true\n'
    )
    r.config.write_text(probe_toml(r.events.path, "a") + smart2)
    with open(r.tmp / "run.out", "ab") as out:
        p = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *CLI, "-c", str(r.config), "run"],
            env=r.env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_for(lambda: r.events.starts("a") and r.events.starts("s2"), 15, "both up")
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(20) == 0
        stops = {n for _, n, w, _ in r.events.lines() if w == "STOP"}
        assert stops == {"a", "s2"}
        assert "smart daemons are stopped too" in (r.tmp / "run.out").read_text()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # ends the whole namespace with it
            p.wait()
        # The events file holds pids of the (now gone) namespace: never signal those numbers here.
        r.events = Events(r.tmp / "no-host-pids.log")


def test_logs_follow__new_lines_arrive(run) -> None:  # type: ignore[no-untyped-def]
    r = run("")
    ticker = json.dumps(["sh", "-c", "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.1; done"])
    r.config.write_text(f"[daemons.ticker]\ncommand = {ticker}\n")
    r.start()
    wait_for(lambda: "tick-2" in r.cli("logs", "ticker").stdout, 10, "first ticks")
    out = r.tmp / "follow.out"
    with open(out, "w") as f:
        follower = subprocess.Popen([*CLI, "-c", str(r.config), "logs", "ticker", "-n", "1", "-f"],
                                    env=r.env, stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        first = wait_for(lambda: out.read_text().split(), 5, "the last line")[0]
        n = int(first.split("-")[1])
        wait_for(lambda: f"tick-{n + 3}" in out.read_text(), 5, "lines that came after, followed")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(5) == 0
