"""Issue 15, item 6: a command readiness probe and the leader hooks run as the daemon's user,
group and supplementary groups, in a session of their own, like the daemon itself; never as root."""

from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.model import DaemonSpec, LeaderSpec, ReadyProbe
from tests.helpers.harness import Sandbox, wait_for
from tests.security.attacker import NOBODY, needs_root, nobody_dir

pytestmark = needs_root
WHO = 'echo "$(id -u) $(id -g) $(id -G) $(ps -o sid= -p $$) $$ ${{USER:-unset}}" > {out}'


def who(path: Path) -> list[str]:
    return path.read_text().split()


def test_a_command_probe_and_the_lead_and_unlead_hooks_run_as_the_daemons_user(sandbox: Sandbox) -> None:
    lair = nobody_dir("ad-sec-probe-")
    sandbox.cleanup_paths.append(lair)
    probe_out, lead_out, unlead_out = lair / "probe", lair / "lead", lair / "unlead"
    leader = LeaderSpec(
        lock=f"ad-sec-{uuid.uuid4().hex[:8]}",
        backend="file",
        lease=4.0,
        renew=0.5,
        on_lead=("/bin/sh", "-c", WHO.format(out=lead_out)),
        on_unlead=("/bin/sh", "-c", WHO.format(out=unlead_out)),
    )
    spec = DaemonSpec(
        name="worker",
        command=("/bin/sleep", "300"),
        user="nobody",
        ready=ReadyProbe(command=("/bin/sh", "-c", WHO.format(out=probe_out))),
        leader=leader,
        stop_timeout=0.5,
        on_reload="keep",
        log="raw",
    )
    runtime.join(sandbox.runtime_dir, sandbox.owner().pid, runtime.payload([spec], source="test"))
    wait_for(lambda: sandbox.daemon("worker")["ready"] is True, 10, "the probe to pass")
    wait_for(lambda: len(who(lead_out)) == 6, 5, "the lead hook's answer")
    nobody = [str(NOBODY), str(NOBODY), str(NOBODY)]
    for out in (probe_out, lead_out):
        uid, gid, groups, sid, pid, user = who(out)
        assert [uid, gid, groups] == nobody, f"{out.name} ran as {who(out)}, not as the daemon's user"
        assert sid == pid, f"{out.name} is not in a session of its own: {who(out)}"
        assert user == "nobody"
    # Losing the lock for real: its holder dies, the daemon is stopped, then the unlead hook runs.
    holder = int(re.findall(r"holder pid (\d+)", sandbox.log_text())[-1])
    os.kill(holder, signal.SIGKILL)
    wait_for(lambda: unlead_out.exists() and len(who(unlead_out)) == 6, 10, "the unlead hook's answer")
    assert who(unlead_out)[:3] == nobody, f"the unlead hook ran as {who(unlead_out)}"
