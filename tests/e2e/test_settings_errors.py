"""One rule for host settings: the CLI and gunicorn refuse the same bad value with the same words."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tests.helpers.hosts import Host, free_port, no_supervisor

EXPECTED = (
    "invalid daemon declarations in the environment:\n"
    "  - key 'ATTACH_DAEMONS_WAIT_READY': must be a number of seconds >= 0, not 'abc'"
)


def test_a_bad_wait_ready_in_the_environment__cli_run_and_gunicorn_say_the_same(
    host: Callable[..., Host],
) -> None:
    h = host("plain")
    toml = h.dir / "f.toml"
    toml.write_text(f'[daemons.a]\ncommand = ["{sys.executable}", "-c", "import time; time.sleep(60)"]\n')
    cli = h.run(
        [sys.executable, "-m", "attachdaemon_core", "--config", str(toml), "run"],
        ATTACH_DAEMONS_WAIT_READY="abc",
    )
    assert cli.returncode == 1, cli.stderr
    assert cli.stderr == EXPECTED + "\n" and "Traceback" not in cli.stderr

    g = h.gunicorn(free_port(), ATTACH_DAEMONS_WAIT_READY="abc")
    code = g.wait_exit(30)
    out = g.output()
    assert code != 0, out
    assert f"attachdaemon: refusing to start: {EXPECTED}\n" in out, out
    assert h.box.events.lines() == []
    assert no_supervisor(h.box.runtime_dir) and not h.supervisors()
