"""hosts.index.read_index: which entries are listed, which are removed, and that a supervisor's
entry written while it judges is never lost. The OS seams (is the pid a supervisor, does anything
listen on the socket) are faked; the index is a real directory."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from attachdaemon_core.hosts.index import read_index

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This user's index, under a private $XDG_RUNTIME_DIR."""
    tmp_path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = tmp_path / f"attachdaemon-{os.geteuid()}" / "index"
    path.mkdir(parents=True)
    return path


def entry(index: Path, key: str, pid: int, runtime_dir: str | None = None) -> Path:
    path = index / f"{key}.json"
    path.write_text(json.dumps({"pid": pid, "runtime_dir": runtime_dir or f"/run/{key}", "version": "x"}))
    return path


def judge(alive: set[int], listening: set[str]) -> dict[str, Callable[..., bool]]:
    return {"alive": lambda pid: pid in alive, "listening": lambda d: d in listening}


def test_live_entries_listed_dead_ones_removed(index: Path) -> None:
    live = entry(index, "live", 100)
    dead = entry(index, "dead", 200)
    assert [e["pid"] for e in read_index(**judge(alive={100}, listening=set()))] == [100]
    assert live.exists()
    assert not dead.exists()
    assert sorted(p.name for p in index.iterdir()) == ["live.json"], "nothing left aside"


def test_dead_pid_but_socket_listening__kept_not_listed(index: Path) -> None:
    # A supervisor the guard is respawning: the old pid is gone, the new one has not rewritten
    # the entry yet, or something answers there: not verifiably stale.
    restarting = entry(index, "restarting", 300, "/run/restarting")
    assert read_index(**judge(alive=set(), listening={"/run/restarting"})) == []
    assert restarting.exists()


def test_unreadable_or_odd_entries_kept_and_not_judged(index: Path) -> None:
    (index / "broken.json").write_text("{not json")
    (index / "nopid.json").write_text(json.dumps({"runtime_dir": "/run/x"}))
    (index / "strpid.json").write_text(json.dumps({"pid": "12", "runtime_dir": "/run/x"}))
    (index / "list.json").write_text("[1, 2]")
    (index / "k.json.0123abcd.tmp").write_text(json.dumps({"pid": 5, "runtime_dir": "/run/t"}))
    asked: list[object] = []

    def alive(pid: int) -> bool:
        asked.append(pid)
        return False

    def listening(runtime_dir: str) -> bool:
        asked.append(runtime_dir)
        return False

    before = sorted(p.name for p in index.iterdir())
    assert read_index(alive=alive, listening=listening) == []
    assert asked == []
    assert sorted(p.name for p in index.iterdir()) == before


def test_entry_rewritten_while_judged__the_new_one_survives(index: Path) -> None:
    path = entry(index, "same", 400, "/run/same")

    def listening(runtime_dir: str) -> bool:
        # A new supervisor for the same directory writes its entry as the supervisor does
        # (a new file renamed over the old one) right after the old one was judged dead.
        fresh = index / "same.json.feedbeef.tmp"
        fresh.write_text(json.dumps({"pid": 401, "runtime_dir": "/run/same"}))
        os.replace(fresh, path)
        return False

    assert read_index(alive=lambda pid: False, listening=listening) == []
    assert json.loads(path.read_text())["pid"] == 401
    assert sorted(p.name for p in index.iterdir()) == ["same.json"]
    assert [e["pid"] for e in read_index(alive=lambda pid: pid == 401, listening=lambda d: False)] == [401]


def test_no_index__nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert read_index(alive=lambda pid: True, listening=lambda d: True) == []
