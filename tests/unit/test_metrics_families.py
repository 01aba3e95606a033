"""The metrics' text format (docs/monitoring.md), read back with prometheus_client's own parser;
the answers are the shape the supervisor's ``metrics`` verb gives."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from attachdaemon_core.control.verbs import CLI_VERBS, READ_ONLY_VERBS, VERBS
from attachdaemon_core.engine.states import State
from attachdaemon_core.hosts.metrics import LEADER_ROLES, STATES, render_answer

pytestmark = pytest.mark.unit


def daemon(name: str, **kw: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "kind": "attached",
        "control": False,
        "state": "running",
        "pid": 100,
        "ready": True,
        "restarts": 2,
        "started_at": 1796395677.5,
        "last_exit": None,
        "cpu_percent": 0.1,
        "rss_bytes": 4096,
        "error": None,
        "leader": None,
    }
    return {**base, **kw}


ANSWER = {
    "status": {
        "supervisor": {"pid": 7},
        "daemons": [
            daemon("kv"),
            daemon(
                "beat",
                kind="smart",
                state="standby",
                pid=None,
                ready=None,
                started_at=None,
                last_exit={"code": None, "signal": 15, "at": 1.0},
                leader={"lock": "beat-lock", "role": "follower", "holder": "h:1", "token": None},
            ),
            daemon(
                'odd name "quoted"',
                state="backoff",
                pid=None,
                started_at=None,
                last_exit={"code": 3, "signal": None, "at": 1.0},
            ),
        ],
    },
    "usage": {"kv": {"rss_bytes": 8192, "cpu_seconds": 1.25, "processes": 2}},
    "process": {
        "cpu_seconds_total": 0.5,
        "resident_memory_bytes": 1.0e7,
        "virtual_memory_bytes": 2.0e7,
        "start_time_seconds": 1796395600.0,
        "open_fds": 12.0,
        "max_fds": 1024.0,
    },
}


def parsed(answer: dict[str, Any] | None) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text, content_type = render_answer(answer)
    assert content_type.startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            key = tuple(sorted(s.labels.items()))
            assert key not in out.get(s.name, {}), f"{s.name}{key} twice"
            out.setdefault(s.name, {})[key] = s.value
    return out


def test_every_metric_of_the_list_with_its_labels_and_values() -> None:
    m = parsed(ANSWER)
    assert m["attachdaemon_supervisor_up"] == {(): 1.0}
    assert m["attachdaemon_daemon_up"] == {
        (("daemon", "kv"), ("kind", "attached")): 1.0,
        (("daemon", "beat"), ("kind", "smart")): 0.0,
        (("daemon", 'odd name "quoted"'), ("kind", "attached")): 0.0,
    }
    states = m["attachdaemon_daemon_state"]
    assert len(states) == 3 * len(STATES)
    assert {k for k, v in states.items() if v == 1.0} == {
        (("daemon", "kv"), ("state", "running")),
        (("daemon", "beat"), ("state", "standby")),
        (("daemon", 'odd name "quoted"'), ("state", "backoff")),
    }
    assert m["attachdaemon_daemon_ready"][(("daemon", "kv"),)] == 1.0
    assert m["attachdaemon_daemon_ready"][(("daemon", "beat"),)] == 0.0
    assert m["attachdaemon_daemon_restarts_total"][(("daemon", "kv"),)] == 2.0
    assert m["attachdaemon_daemon_start_time_seconds"] == {(("daemon", "kv"),): 1796395677.5}
    assert m["attachdaemon_daemon_last_exit_code"] == {
        (("daemon", "beat"),): 128.0 + 15,
        (("daemon", 'odd name "quoted"'),): 3.0,
    }
    assert m["attachdaemon_daemon_resident_memory_bytes"] == {(("daemon", "kv"),): 8192.0}
    assert m["attachdaemon_daemon_cpu_seconds_total"] == {(("daemon", "kv"),): 1.25}
    assert m["attachdaemon_leader"] == {
        (("lock", "beat-lock"), ("role", r)): float(r == "follower") for r in LEADER_ROLES
    }
    assert m["process_cpu_seconds_total"] == {(): 0.5}
    assert m["process_open_fds"] == {(): 12.0}
    assert m["process_start_time_seconds"] == {(): 1796395600.0}


def test_no_supervisor_is_up_0_and_nothing_else() -> None:
    assert parsed(None) == {"attachdaemon_supervisor_up": {(): 0.0}}


def test_the_state_series_cover_every_state() -> None:
    assert set(STATES) == {s.value for s in State}


def test_events_and_metrics_are_read_only_commands() -> None:
    for verb in ("events", "metrics"):
        assert verb in READ_ONLY_VERBS and verb in CLI_VERBS
    assert [a.name for a in VERBS["events"].wire_args] == ["after", "follow"]
