"""Issue 15, item 5: the read-only uid cannot lock root out of the control socket by holding
every connection slot; it is told what happened."""

from __future__ import annotations

import json
import os
import select
import socket
import struct

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.security.attacker import NOBODY, needs_root

pytestmark = needs_root
CONNECTIONS = 80


def test_nobody_holding_80_connections_leaves_root_its_slots(sandbox: Sandbox) -> None:
    spec = DaemonSpec(name="sleeper", command=("/bin/sleep", "300"), on_reload="keep")
    payload = runtime.payload([spec], source="test")
    payload["read_only_uids"] = [NOBODY]  # gunicorn's user: may read status and logs
    runtime.join(sandbox.runtime_dir, sandbox.owner().pid, payload)
    wait_for(lambda: sandbox.running("sleeper"), 10, "sleeper running")
    path = client.socket_path(sandbox.runtime_dir)

    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the attacker: nobody holds as many connections as it can
        code = 1
        try:
            os.close(report_r)
            report = {"error": "none"}
            os.close(go_w)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            conns = []
            report["error"] = "connect"
            for _ in range(CONNECTIONS):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                # Blocking, waiting up to 5 s for room in the listen backlog.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 5, 0))
                s.connect(path)
                conns.append(s)
            answers: list[str] = []
            pending = list(conns)
            while pending:
                ready, _, _ = select.select(pending, [], [], 1.0)
                if not ready:
                    break  # the rest are held open, unanswered
                for s in ready:
                    answers.append(s.recv(65536).decode())
                    pending.remove(s)
            report = {"held": len(pending), "answers": answers}
            os.write(report_w, json.dumps(report).encode())
            os.close(report_w)
            os.read(go_r, 1)  # hold them until the test is done
            code = 0
        except Exception as exc:
            os.write(report_w, json.dumps({"error": f"{report['error']}: {exc!r}"}).encode())
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(go_r)
    try:
        with os.fdopen(report_r) as f:
            report = json.loads(f.read())
        assert "error" not in report, report
        status = client.call(sandbox.runtime_dir, "status", timeout=2.0)  # root, while nobody holds them
    finally:
        os.close(go_w)
        os.waitpid(pid, 0)
    assert [d["name"] for d in status["daemons"]] == ["sleeper"]
    assert report["held"] + len(report["answers"]) == CONNECTIONS
    assert report["answers"], report
    answer = json.loads(report["answers"][0])
    assert answer["ok"] is False
    assert f"uid {NOBODY} already has {report['held']} connections open" in answer["error"], answer
