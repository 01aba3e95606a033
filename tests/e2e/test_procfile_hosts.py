"""A Procfile named where a config file is accepted: gunicorn's ``attach_daemons = "Procfile"``
(docs/procfile.md). ``attachdaemon run --config Procfile`` is in tests/core/test_procfile_run.py."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable

from tests.helpers.harness import PROBE, alive, wait_for
from tests.helpers.hosts import Host, free_port

DUMP = """\
import json, os, signal, sys
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "env": dict(os.environ), "cwd": os.getcwd()}, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
signal.pause()
"""


def test_gunicorn_attach_daemons_names_a_procfile(host: Callable[..., Host]) -> None:
    h = host("plain")
    (h.dir / "dump.py").write_text(DUMP)
    seen = h.dir / "dump.json"
    (h.dir / "Procfile").write_text(
        f"probe: {sys.executable} {PROBE} {h.box.events.path} probe\n"
        f"dump: {sys.executable} dump.py {seen} --port $PORT\n"
    )
    (h.dir / ".env").write_text("APP_MODE='from dot env'\n")
    (h.dir / "gunicorn.conf.py").write_text(
        "from attachdaemon_core.hosts.gunicorn import *  # noqa: F403\n\n"
        'wsgi_app = "wsgiapp:app"\n'
        'attach_daemons = "Procfile"\n'
        "control_socket_disable = True\n"
    )
    server = h.gunicorn(free_port())
    dumped = wait_for(lambda: json.loads(seen.read_text()), 20, "the dump line to write its environment")
    h.box.extra_pids.add(dumped["pid"])
    probe = wait_for(lambda: h.living("probe"), 20, "the probe line to run")[0]
    assert dumped["env"]["PORT"] == "5100" and dumped["env"]["APP_MODE"] == "from dot env"
    assert dumped["cwd"] == str(h.dir)
    assert [d["name"] for d in h.status()["daemons"]] == ["probe", "dump"]
    server.signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    wait_for(lambda: not alive(dumped["pid"]) and not alive(probe), 10, "both lines stopped with gunicorn")
