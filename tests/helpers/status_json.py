"""The stable status JSON of docs/status-json.md: every key, and every value's type."""

from __future__ import annotations

from typing import Any

SUPERVISOR_KEYS = {
    "pid": int,
    "owners": list,
    "started_at": float,
    "respawns": int,
    "version": str,
    "runtime_dir": str,
}
DAEMON_KEYS = {
    "name",
    "kind",
    "control",
    "oneshot",
    "state",
    "pid",
    "ready",
    "restarts",
    "started_at",
    "last_exit",
    "cpu_percent",
    "rss_bytes",
    "error",
    "leader",
    "waiting_on",
    "job",
    "notify",
    "restart_cause",
}


def check_status_json(data: dict[str, Any]) -> None:
    assert set(data) == {"supervisor", "daemons"}
    assert set(data["supervisor"]) == set(SUPERVISOR_KEYS)
    for key, kind in SUPERVISOR_KEYS.items():
        assert isinstance(data["supervisor"][key], kind), key
    for d in data["daemons"]:
        assert set(d) == DAEMON_KEYS, d
        assert d["kind"] in ("attached", "smart", "smart2") and isinstance(d["control"], bool)
        assert d["state"] in (
            "starting",
            "running",
            "backoff",
            "stopping",
            "stopped",
            "exited",
            "fatal",
            "standby",
            "scheduled",
        )
        assert d["pid"] is None or isinstance(d["pid"], int)
        assert d["ready"] is None or isinstance(d["ready"], bool)
        assert isinstance(d["restarts"], int)
        assert d["started_at"] is None or isinstance(d["started_at"], float)
        assert d["last_exit"] is None or set(d["last_exit"]) == {"code", "signal", "at"}
        assert d["cpu_percent"] is None or isinstance(d["cpu_percent"], float)
        assert d["rss_bytes"] is None or isinstance(d["rss_bytes"], int)
        assert d["error"] is None or isinstance(d["error"], str)
        assert isinstance(d["oneshot"], bool)
        for wait in d["waiting_on"]:
            assert set(wait) == {"name", "condition", "failed", "why"}, wait
            assert wait["condition"] in ("ready", "started", "completed") and isinstance(wait["failed"], bool)
        assert d["leader"] is None
