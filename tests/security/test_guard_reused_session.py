"""Issue 15, item 6: a guard emptying the sessions of a dead supervisor never signals a session
that only looks like one it recorded: a recorded leader pid that is now another process (pid
reuse) leading a session of its own, here a local user's (nobody's) program.

Pid reuse cannot be forced, so the record is made by hand: the guard is told of nobody's live
session under its leader's pid with another start time, which is exactly what a reused pid looks
like to it. The same run holds two sessions that are truly the guard's, which must be emptied.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from attachdaemon_core.osproc import proc
from tests.helpers.harness import alive, wait_for
from tests.security.attacker import NOBODY, needs_root

pytestmark = needs_root
ROOT = Path(__file__).resolve().parent.parent.parent

# The real guard code, in a root process of its own: it spawns two sessions as the supervisor would
# (one whose leader lives, one whose leader has exited, leaving a member), records them, records
# the stranger's session with a wrong start time, and empties its sessions as after a crash.
GUARD_RUN = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from attachdaemon_core.osproc import proc
    from attachdaemon_core.engine.guard import Guard
    from attachdaemon_core.osproc.spawn import PR_SET_CHILD_SUBREAPER, prctl

    stranger_sid = int(sys.argv[2])
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    g = Guard(sys.argv[1])
    live = subprocess.Popen(["sh", "-c", "sleep 300 & exec sleep 301"], start_new_session=True)
    gone = subprocess.Popen(["sh", "-c", "sleep 302 & echo $!"], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)
    orphan = int(gone.stdout.readline())
    gone.wait()
    deadline = time.monotonic() + 10
    while len(proc.session_members(live.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    ours = sorted(proc.session_members(live.pid) + [orphan])
    g.note(f"+ {live.pid} {proc.stat(live.pid).starttime}")
    g.note(f"+ {gone.pid} 12345")  # its leader has exited; its member is ours
    g.note(f"+ {stranger_sid} {proc.stat(stranger_sid).starttime + 1}")  # a reused pid
    g.empty_sessions()
    print(json.dumps({"ours": ours, "left": [p for p in ours if proc.is_alive(p)]}))
    """
)


def test_the_guard_never_empties_a_session_whose_leader_is_a_reused_pid(tmp_path: Path) -> None:
    # nobody's program: a session leader (pid == sid) with a member, unrelated to any supervisor.
    stranger = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
         "sh", "-c", "sleep 310 & exec sleep 311"],
        start_new_session=True, stdin=subprocess.DEVNULL, cwd="/",
    )  # fmt: skip
    try:
        members = wait_for(lambda: len(m := proc.session_members(stranger.pid)) == 2 and m, 5, "its member")
        assert all(proc.owner_uid(p) == NOBODY for p in members)
        run = subprocess.run(
            [sys.executable, "-c", GUARD_RUN, str(tmp_path), str(stranger.pid)],
            capture_output=True, text=True, timeout=30, cwd=ROOT, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert len(result["ours"]) == 3 and result["left"] == [], result  # the guard's own: emptied
        still = [p for p in members if alive(p)]
        assert still == members, (
            f"the guard signalled nobody's session {stranger.pid}: alive {still} of {members}"
        )
        assert "reused" in run.stderr, run.stderr
    finally:
        os.killpg(stranger.pid, signal.SIGKILL)
        stranger.wait(5)
