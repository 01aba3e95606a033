"""Declaration keys that shape the process: env, cwd, umask, stdin, log files, readiness probes."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import DaemonSpec, ReadyProbe
from tests.helpers.harness import PY, Sandbox, wait_for
from tests.helpers.servers import free_port


def test_env_cwd_umask_reach_the_daemon(sandbox: Sandbox, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import os; m = os.umask(0); "
        "open('report', 'w').write(repr((os.getcwd(), os.environ.get('GREETING'), oct(m), "
        "os.environ.get('PYTHONUNBUFFERED'))))"
    )
    specs = parse_declarations(
        {
            "r": {
                "command": [PY, "-c", script],
                "cwd": str(work),
                "env": {"GREETING": "hi"},
                "umask": "027",
                "restart": "never",
            }
        }
    )
    sandbox.join(sandbox.owner(), specs)
    report = wait_for(lambda: (work / "report").exists() and (work / "report").read_text(), 5, "report")
    assert eval(report) == (str(work), "hi", "0o27", "1")


def test_log_file_gets_output_and_rotates(sandbox: Sandbox, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    specs = parse_declarations(
        {
            "chatty": {
                "command": [
                    "sh",
                    "-c",
                    "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; exec sleep 1000",
                ],
                "log": str(log),
                "log_max_bytes": 1000,
                "log_backups": 2,
            },
        }
    )
    owner = sandbox.owner()
    sandbox.join(owner, specs)
    pid = wait_for(lambda: sandbox.running("chatty"), 5, "chatty")
    wait_for(lambda: "line-399" in log.read_text(), 5, "output in the file")
    assert sandbox.call("logs", name="chatty", lines=2)["lines"] == ["line-398", "line-399"]
    sandbox.call("restart", names=["chatty"])  # each start rotates a file over log_max_bytes
    wait_for(lambda: (p := sandbox.running("chatty")) and p != pid, 5, "restarted")
    wait_for(lambda: Path(f"{log}.1").exists(), 5, "rotated file")
    assert "line-399" in Path(f"{log}.1").read_text()


def test_raw_log_says_nothing_is_captured(sandbox: Sandbox) -> None:
    sandbox.join(sandbox.owner(), [DaemonSpec(name="raw", command=("sleep", "1000"), log="raw")])
    wait_for(lambda: sandbox.running("raw"), 5, "raw running")
    assert sandbox.call("logs", name="raw", lines=5)["note"] == "log is 'raw': output is not captured"


def test_http_and_command_probes_gate_dependents(sandbox: Sandbox, tmp_path: Path) -> None:
    port = free_port()
    flag = tmp_path / "ready.flag"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    specs = [
        DaemonSpec(
            name="cmd", command=("sleep", "1000"), ready=ReadyProbe(command=("test", "-e", str(flag)))
        ),
        DaemonSpec(name="web", command=("sleep", "1000"), ready=ReadyProbe(http=f"http://127.0.0.1:{port}/")),
        DaemonSpec(name="app", command=("sleep", "1000"), depends_on=("cmd", "web")),
    ]
    sandbox.join(sandbox.owner(), specs)
    wait_for(lambda: sandbox.running("cmd") and sandbox.running("web"), 5, "probed daemons running")
    app = sandbox.daemon("app")
    assert app["state"] == "starting" and app["pid"] is None
    assert app["error"] == "waiting on 'cmd' to be ready, 'web' to be ready"
    flag.write_text("")
    wait_for(lambda: sandbox.daemon("cmd")["ready"], 5, "command probe succeeded")
    assert sandbox.daemon("app")["pid"] is None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sandbox.daemon("web")["ready"], 10, "http probe succeeded")
        wait_for(lambda: sandbox.running("app"), 5, "app started after both were ready")
    finally:
        server.shutdown()
        server.server_close()


def test_ready_timeout__reported_and_dependents_keep_waiting(sandbox: Sandbox) -> None:
    port = free_port()
    specs = [
        DaemonSpec(
            name="db", command=("sleep", "1000"), ready=ReadyProbe(tcp=("127.0.0.1", port)), ready_timeout=0.3
        ),
        DaemonSpec(name="app", command=("sleep", "1000"), depends_on=("db",)),
    ]
    sandbox.join(sandbox.owner(), specs)
    db = wait_for(
        lambda: (d := sandbox.daemon("db"))["error"] and "not ready after" in d["error"] and d, 5, "timeout"
    )
    assert db["error"] == f"not ready after 0.3s (tcp 127.0.0.1:{port})" and db["ready"] is False
    assert sandbox.daemon("app")["error"] == "waiting on 'db' to be ready"
