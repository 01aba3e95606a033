"""gunicorn masters owning the supervisor: real gunicorn (current and 23.0.0), real signals.

Every fixture project declares ``a`` (attached, on_reload restart) and ``s`` (smart, pidfile).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.harness import alive, wait_for
from tests.helpers.hosts import Host, Server, free_port, no_supervisor

CURRENT = "current"
OLD = "23.0.0"


def _python(version: str, request: pytest.FixtureRequest) -> str:
    if version == CURRENT:
        return sys.executable
    return str(request.getfixturevalue("gunicorn23_python"))


def boot(h: Host, **env: str) -> tuple[Server, int]:
    port = free_port()
    g = h.gunicorn(port, **env)
    try:
        wait_for(lambda: h.box.running("a") and h.box.running("s"), 30, "daemons running")
        wait_for(lambda: "200 OK" in h.http(port), 15, "gunicorn answering")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- gunicorn output:\n{g.output()}") from None
    return g, port


def one_supervisor(h: Host, pid: int) -> None:
    assert h.supervisors() == [pid], h.supervisors()


@pytest.mark.parametrize(
    ("fixture", "version"),
    [
        ("plain", CURRENT),
        ("plain", OLD),
        ("flaskapp", CURRENT),
        ("flaskapp", OLD),
        ("djsite", CURRENT),
        ("djsite", OLD),
    ],
)
def test_gunicorn__crash_hup_usr2_term__daemons_follow_the_masters(
    host: Callable[..., Host], request: pytest.FixtureRequest, fixture: str, version: str
) -> None:
    h = host(fixture, _python(version, request))
    box = h.box
    g, _port = boot(h)
    sup = box.supervisor_pid()
    one_supervisor(h, sup)
    assert box.status()["supervisor"]["owners"] == [g.pid]
    smart = box.running("s")
    assert smart is not None

    # a daemon crash: restarted at once
    first = box.running("a")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (p := box.running("a")) and p != first and p, 5, "a restarted")

    # HUP: the attached daemon is restarted (on_reload restart), the smart one kept
    g.signal(signal.SIGHUP)
    third = wait_for(
        lambda: (p := box.running("a")) and p != second and p, 15, f"a restarted on HUP\n{g.output()}"
    )
    assert not alive(second)
    assert box.running("s") == smart
    one_supervisor(h, sup)

    # USR2: a new master joins as a second owner of the same supervisor
    g.signal(signal.SIGUSR2)
    pid2 = Path(box.tmp / "gunicorn.pid.2")
    new_master = wait_for(
        lambda: pid2.exists() and int(pid2.read_text().split()[0]), 30, "new master pidfile"
    )
    wait_for(
        lambda: box.status()["supervisor"]["owners"] == sorted([g.pid, new_master]),
        30,
        f"two owners\n{g.output()}",
    )
    wait_for(lambda: box.running("a") not in (None, third), 10, "a restarted for the new master")
    one_supervisor(h, sup)

    # TERM of the old master: the new one still owns everything, nothing is stopped
    g.signal(signal.SIGTERM)
    g.wait_exit(20)
    wait_for(lambda: box.status()["supervisor"]["owners"] == [new_master], 10, "one owner left")
    fourth = box.running("a")
    assert fourth is not None and h.living("a") == [fourth], h.living("a")
    assert h.living("s") == [smart] and box.events.starts("s") == [smart]
    one_supervisor(h, sup)
    assert box.status()["supervisor"]["respawns"] == 0

    # TERM of the last master: attached daemons stopped, the smart one left running
    os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: not alive(new_master), 20, "new master exit")
    assert h.living("a") == []
    assert alive(smart)
    wait_for(lambda: no_supervisor(box.runtime_dir) and not h.supervisors(), 10, "supervisor exit")
    output = g.output()
    assert "refusing" not in output and "Traceback" not in output, output


@pytest.mark.parametrize("fixture", ["plain", "flaskapp", "djsite"])
def test_gunicorn__master_sigkilled__attached_gone_within_2s_smart_alive(
    host: Callable[..., Host], fixture: str
) -> None:
    h = host(fixture)
    g, _ = boot(h)
    attached = h.box.running("a")
    smart = h.box.running("s")
    sup = h.box.supervisor_pid()
    one_supervisor(h, sup)
    g.signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: attached is not None and not alive(attached), 2.5, "attached daemon gone")
    assert time.monotonic() - t0 < 2.0
    assert smart is not None and alive(smart)
    wait_for(lambda: not alive(sup), 5, "supervisor exit")
    assert h.living("a") == []


@pytest.mark.parametrize("fixture", ["plain", "flaskapp", "djsite"])
def test_gunicorn__bad_declarations__refuses_to_start_and_starts_nothing(
    host: Callable[..., Host], fixture: str
) -> None:
    h = host(fixture)
    g = h.gunicorn(free_port(), AD_BAD="1")
    code = g.wait_exit(30)
    out = g.output()
    assert code != 0
    assert "refusing to start" in out and "daemon 'bad'" in out and "'comand'" in out, out
    assert "SIGNOPE" in out, out
    assert h.box.events.lines() == []
    assert no_supervisor(h.box.runtime_dir) and not h.supervisors()


REPLACED = """

def on_exit(server):
    server.log.info("my own on_exit")
"""

CHAINED = """

import attachdaemon_core.gunicorn


def on_exit(server):
    server.log.info("my own on_exit")
    attachdaemon_core.gunicorn.on_exit(server)
"""


def test_gunicorn__hook_replaced_without_calling_ours__refused_at_start(host: Callable[..., Host]) -> None:
    h = host("plain")
    with open(h.dir / "gunicorn.conf.py", "a") as f:
        f.write(REPLACED)
    g = h.gunicorn(free_port())
    assert g.wait_exit(30) != 0
    out = g.output()
    assert "the on_exit hook in the gunicorn configuration is on_exit()" in out, out
    assert "never calls attachdaemon's on_exit" in out, out
    assert h.box.events.lines() == [] and no_supervisor(h.box.runtime_dir)


def test_gunicorn__hook_replaced_and_calling_ours__accepted(host: Callable[..., Host]) -> None:
    h = host("plain")
    with open(h.dir / "gunicorn.conf.py", "a") as f:
        f.write(CHAINED)
    g, _ = boot(h)
    attached = h.box.running("a")
    g.signal(signal.SIGTERM)
    g.wait_exit(20)
    assert "my own on_exit" in g.output()
    # our on_exit ran: it waited for the final stop, so the daemon is already gone
    assert attached is not None and not alive(attached)
