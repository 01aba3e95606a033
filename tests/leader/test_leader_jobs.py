"""A job with ``leader`` on two "hosts" (two supervisors with their own runtime directories and
owners, sharing one lock): each due run runs exactly once across them, none is skipped, and the
host without the lock shows the job ``standby`` (docs/events.md, "Jobs"). Runs are real
processes on a one-second schedule; each appends its host and wall-clock time to one file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from attachdaemon_core.spec.model import DaemonSpec, LeaderSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.leader.conftest import unique_name


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Sandbox]]:
    boxes = []
    for h in ("h1", "h2"):
        (tmp_path / h).mkdir()
        boxes.append(Sandbox(tmp_path / h))
    yield boxes
    problems = [p for b in boxes for p in b.cleanup()]
    assert not problems, problems


@pytest.fixture(params=["file", "postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "file":
        return "file"
    if request.param == "postgres":
        dsn = dict(p.split("=", 1) for p in request.getfixturevalue("pg_dsn").split())
        return f"postgresql://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"
    return str(request.getfixturevalue("redis_url"))


def test_two_hosts_run_each_due_run_exactly_once(hosts: list[Sandbox], backend: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    lock = unique_name("job")
    for h, box in zip(("h1", "h2"), hosts, strict=True):
        record = f'echo "{h} $(date +%s.%N)" >> {runs}'
        spec = DaemonSpec(
            name="beat",
            command=("/bin/sh", "-c", record),
            shell=True,
            schedule="* * * * * *",
            on_reload="keep",
            leader=LeaderSpec(lock=lock, backend=backend, lease=4.0, renew=0.5),
            stop_timeout=0.5,
        )
        box.join(box.owner(), [spec])
    wait_for(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 6, 20, "six runs")
    lines = [line.split() for line in runs.read_text().splitlines()]
    seconds = [int(float(t)) for _h, t in lines]
    assert len(set(seconds)) == len(seconds), f"a slot ran twice: {lines}"
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), f"a slot was skipped: {lines}"
    assert len({h for h, _t in lines}) == 1, f"both hosts ran the job: {lines}"
    states = sorted(b.daemon("beat")["state"] for b in hosts)
    assert states[1] == "standby" and states[0] in ("running", "scheduled"), states
    leader = next(b for b in hosts if b.daemon("beat")["state"] != "standby")
    assert leader.daemon("beat")["job"]["runs"] >= 6
