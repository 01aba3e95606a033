"""Process start times are compared in one clock, whatever the machine's boot instant.

/proc/PID/stat counts a process's start in clock ticks since boot; /proc/stat's ``btime`` gives the
boot instant truncated to whole seconds. Adding the two (as the supervisor once did) puts every
start up to 1 s early, so "started after the launch" checks failed on most machines (those whose
boot instant has a fractional part above the check's slack). These tests inject a boot instant
whose fractional part is 0.99 s.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from attachdaemon_core.osproc import pidfile, proc

FRACTION = 0.99


@pytest.mark.unit
def test_wall_from_ticks_is_exact_for_a_fractional_boot_instant() -> None:
    boot_instant = 1_796_392_930 + FRACTION
    started_wall = boot_instant + 1234.5
    ticks = round((started_wall - boot_instant) * proc.CLK_TCK)
    now_boot = 5000.0
    clocks = (boot_instant + now_boot, now_boot)
    assert proc.wall_from_ticks(ticks, clocks) == pytest.approx(started_wall, abs=1 / proc.CLK_TCK)
    # What adding the truncated btime gives: almost a second early.
    truncated = math.floor(boot_instant) + ticks / proc.CLK_TCK
    assert started_wall - truncated == pytest.approx(FRACTION, abs=1 / proc.CLK_TCK)


@pytest.fixture
def fractional_boot(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """Clocks whose boot instant (wall - boot) has a fractional part of 0.99 s."""
    real_wall, real_boot = proc.read_clocks()
    instant = math.floor(real_wall - real_boot) + FRACTION

    def clocks() -> tuple[float, float]:
        boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return instant + boot, boot

    monkeypatch.setattr(proc, "CLOCKS", [clocks])
    yield instant


def test_a_fresh_process_starts_after_the_instant_before_its_spawn(fractional_boot: float) -> None:
    before = proc.CLOCKS[0]()[0]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        st = proc.stat(child.pid)
        assert st is not None
        after = proc.CLOCKS[0]()[0]
        tick = 1 / proc.CLK_TCK
        assert before - tick <= st.started_at <= after + tick
        assert 0 <= st.age <= after - before + tick
    finally:
        child.kill()
        child.wait()


def test_pidfile_start_check_uses_the_same_clock(fractional_boot: float) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        written = proc.CLOCKS[0]()[0]  # the pidfile's mtime, in the injected wall clock
        programs = (sys.executable,)
        assert pidfile.verify(child.pid, programs=programs, mtime=written, file_uid=os.geteuid()) is None
        why = pidfile.verify(child.pid, programs=programs, mtime=written - 3.0, file_uid=os.geteuid())
        assert why is not None and "reused pid" in why
    finally:
        child.kill()
        child.wait()
