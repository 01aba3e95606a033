"""The samples under real gunicorn: visits counted through their daemons, Ctrl-C, the demo script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import free_port
from tests.samples.conftest import OPTIONAL, SAMPLES, SampleRun, repo_venv_python, visits

KVSTORE = SAMPLES / "kvstore.py"


def _counts(run: SampleRun) -> dict[str, int | None]:
    code, page = run.get("/")
    assert code == 200, page
    return {name: visits(page, name) for name in ("kv", *OPTIONAL)}


def _serve_and_interrupt(run: SampleRun) -> dict[str, dict[str, object]]:
    """Boot the sample, check the counters, Ctrl-C it; return the daemons as they ran."""
    server = run.start()
    run.wait_up(server)
    daemons = wait_for(run.all_running, 30, f"{sorted(run.expected())} running and ready")
    first, second = _counts(run), _counts(run)
    for name in ("kv", *OPTIONAL):
        if name in run.expected():
            assert first[name] is not None and second[name] == first[name] + 1, (name, first, second)
        else:
            assert first[name] is None and second[name] is None, (name, first, second)
    assert run.interrupt(server) == 0, server.output()
    return daemons  # type: ignore[return-value]


def test_django_sample_counts_visits_through_its_daemons_and_ctrl_c_stops_the_attached_ones(
    sample_run: Callable[..., SampleRun],
) -> None:
    run = sample_run("django")
    daemons = _serve_and_interrupt(run)
    attached = {n: d["pid"] for n, d in daemons.items() if d["kind"] == "attached"}
    smart = {n: d["pid"] for n, d in daemons.items() if d["kind"] != "attached"}
    assert set(attached) == {"kv"} | ({"memcached"} & run.expected())
    assert set(smart) == {"redis", "postgres"} & run.expected()
    wait_for(lambda: not any(alive(p) for p in attached.values()), 15, "the attached daemons to stop")
    wait_for(lambda: not run.supervisor_processes(), 15, "the supervisor to exit")
    # Smart daemons keep running, as documented; the sample's stop-smart ends them.
    assert run.smart_pids() == smart
    result = subprocess.run(
        [sys.executable, str(SAMPLES / "sample_daemons.py"), "stop-smart", "django"],
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result
    for name, pid in smart.items():
        assert f"stopping {name} (pid {pid})" in result.stdout
        assert not alive(pid)
    assert not run.ours()


def test_flask_sample_with_python_alone_skips_the_missing_programs_and_leaves_nothing(
    sample_run: Callable[..., SampleRun],
) -> None:
    run = sample_run("flask", hide_programs=True)
    assert run.expected() == {"kv"}
    daemons = _serve_and_interrupt(run)
    assert set(daemons) == {"kv"}
    output = run.servers[0].output()
    for line in (
        "attachdaemon sample: redis-server not installed; skipping it",
        "attachdaemon sample: memcached not installed; skipping it",
        "attachdaemon sample: PostgreSQL (postgres, initdb) not installed",
    ):
        assert output.count(line) == 1, output  # once: the declarations' reader, not each worker
    assert "[kv] kvstore: listening on 127.0.0.1:" in output
    wait_for(lambda: not run.ours(), 15, "every process of the sample to end")


def test_demo_script_prints_the_url_serves_the_sample_and_stops_on_ctrl_c(
    sample_run: Callable[..., SampleRun],
) -> None:
    python = repo_venv_python()
    if python is None:
        pytest.skip("scripts/demo.sh runs in the repository's .venv; these tests run elsewhere")
    installed = subprocess.run(
        [python, "-c", "import attachdaemon_django, attachdaemon_flask, gunicorn"],
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        check=False,
    )
    if installed.returncode != 0:
        pytest.skip("attachdaemon is not installed in .venv (demo.sh would install it: not in a test)")
    run = sample_run("django", hide_programs=True)
    del run.env["PYTHONPATH"]  # the demo uses attachdaemon as installed in .venv
    server = run.start(["bash", str(SAMPLES.parent / "scripts" / "demo.sh")])
    run.wait_up(server)
    out = server.output()
    url = f"http://127.0.0.1:{run.port}/"
    assert url in out and out.index(url) < out.index("Starting gunicorn"), out
    kv = wait_for(lambda: (ds := run.all_running()) and ds["kv"]["pid"], 30, "kv running")
    assert run.interrupt(server) == 0, server.output()
    wait_for(lambda: not alive(kv) and not run.ours(), 15, "every process of the demo to end")


def test_kvstore_protocol_and_clean_sigterm() -> None:
    port = free_port()
    daemon = subprocess.Popen(
        [sys.executable, str(KVSTORE), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().startswith(f"kvstore: listening on 127.0.0.1:{port}")
        conn = wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=2), 5, "kvstore")
        with conn, conn.makefile("rw") as f:

            def ask(line: str) -> str:
                f.write(line + "\n")
                f.flush()
                return f.readline().rstrip("\n")

            assert ask("PING") == "PONG"
            assert ask("GET missing") == "(nil)"
            assert ask("SET greeting hello world") == "OK"
            assert ask("GET greeting") == "hello world"
            assert [ask("INCR n"), ask("INCR n")] == ["1", "2"]
            assert ask("INCR greeting") == "ERR value is not an integer"
            assert ask("FLY away").startswith("ERR unknown command")
            assert ask("QUIT") == "BYE"
        assert daemon.stdout.readline().startswith("kvstore: connection from 127.0.0.1:")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        assert daemon.stdout.read() == "kvstore: stopped\n"
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(5)
        if daemon.stdout is not None:
            daemon.stdout.close()
