"""Jobs' keys (``schedule``, ``unique``, ``timeout``, ``timezone``) and their rules
(docs/declarations.md, "Jobs"); a missing ``cronsim`` is error E003 naming the extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attachdaemon_core.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError
from tests.helpers.import_blocker import blocker_dir, pythonpath_with


def problems(decls: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_declarations(decls)
    return [str(p) for p in info.value.problems]


@pytest.mark.unit
def test_a_job_declaration_becomes_a_spec() -> None:
    (spec,) = parse_declarations(
        {
            "clearsessions": {
                "command": "python manage.py clearsessions",
                "schedule": "*/5  * * * *",
                "unique": True,
                "timeout": 60,
                "timezone": "Europe/Paris",
            }
        }
    )
    assert (spec.schedule, spec.unique, spec.timeout, spec.timezone) == (
        "*/5 * * * *",
        True,
        60.0,
        "Europe/Paris",
    )
    assert spec.kind == "attached" and spec.on_reload == "keep"  # a reload lets a run finish
    assert spec.to_wire()["schedule"] == "*/5 * * * *"


@pytest.mark.unit
def test_every_problem_of_a_job_is_named_at_once() -> None:
    found = problems(
        {
            "a": {"command": "x", "schedule": "*/5 * * *"},
            "b": {"command": "x", "schedule": "61 * * * *", "timezone": "Mars/Olympus"},
            "c": {"command": "x", "unique": True, "timeout": 5},
            "d": {"command": "x", "schedule": "* * * * *", "pidfile": "/tmp/d.pid", "timeout": 0},
            "e": {"command": "x", "schedule": "0 0 30 2 *"},
        }
    )
    assert found == [
        "daemon 'a', key 'schedule': must have 5 fields (or 6 with seconds first), not 4 (minute hour day "
        "month weekday, e.g. '30 2 * * *' (a sixth field first: seconds))",
        "daemon 'b', key 'schedule': '61 * * * *' is not a valid cron expression: Bad minute",
        "daemon 'b', key 'timezone': unknown time zone 'Mars/Olympus' (an IANA name such as "
        "'Europe/Paris' or 'UTC'; without it, the server's local time)",
        "daemon 'c', key 'unique': only applies with schedule (add schedule = '…', or drop it)",
        "daemon 'c', key 'timeout': only applies with schedule (add schedule = '…', or drop it)",
        "daemon 'd', key 'timeout': must be more than 0 seconds (or none for no timeout)",
        "daemon 'd', key 'pidfile': a job cannot have a pidfile (a job runs its command to the end at "
        "each scheduled time)",
        "daemon 'e', key 'schedule': '0 0 30 2 *' is not a valid cron expression: Bad day-of-month",
    ]


@pytest.mark.unit
def test_a_job_refuses_a_pidfile_control_and_a_readiness_probe_all_said_at_once() -> None:
    found = problems(
        {
            "j": {
                "command": "x",
                "schedule": "* * * * *",
                "pidfile": "/tmp/j.pid",
                "control": True,
                "ready": {"command": ["true"]},
            }
        }
    )
    hint = "(a job runs its command to the end at each scheduled time)"
    assert f"daemon 'j', key 'pidfile': a job cannot have a pidfile {hint}" in found
    assert f"daemon 'j', key 'control': a job cannot be a control daemon {hint}" in found
    assert f"daemon 'j', key 'ready': a job has no readiness probe {hint}" in found


def test_check__cronsim_missing__error_e003_naming_the_extra(tmp_path: Path) -> None:
    toml = tmp_path / "daemons.toml"
    toml.write_text('[daemons.backup]\ncommand = ["true"]\nschedule = "0 3 * * *"\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath_with(blocker_dir(tmp_path / "blocker", "cronsim"), env.get("PYTHONPATH"))
    r = subprocess.run(
        [sys.executable, "-m", "attachdaemon_core", "-c", str(toml), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "daemon 'backup', key 'schedule': a schedule needs the Python package 'cronsim'" in r.stderr
    assert "pip install 'attachdaemon[cron]'" in r.stderr
    assert "Traceback" not in r.stderr
