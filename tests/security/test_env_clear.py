"""Issue 15, item 6: a daemon that drops to nobody gets the root master's environment only when
its declaration lets it (the documented default), never with ``env_clear``, unless ``env_keep``
names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from attachdaemon_core.hosts import runtime
from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec
from tests.helpers.harness import Sandbox, wait_for
from tests.security.attacker import needs_root

SECRET = "s3cret-token-of-the-master"


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:  # read as root
        raw = f.read().decode()
    return dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)


@needs_root
def test_env_clear_keeps_the_masters_secrets_from_a_daemon_run_as_nobody(sandbox: Sandbox) -> None:
    master = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_TIME": "C",
        "HOME": "/root",
        "USER": "root",
        "SECRET_TOKEN": SECRET,
        "DATABASE_URL": "postgresql://app:pw@db/app",
    }

    def daemon(name: str, **keys: object) -> DaemonSpec:
        return DaemonSpec(
            name=name,
            command=("/bin/sleep", "300"),
            user="nobody",
            env=(("OWN", name),),
            on_reload="keep",
            log="raw",
            **keys,  # type: ignore[arg-type]
        )

    specs = [
        daemon("plain"),
        daemon("cleared", env_clear=True),
        daemon("kept", env_clear=True, env_keep=("SECRET_TOKEN",)),
    ]
    runtime.join(sandbox.runtime_dir, sandbox.owner().pid, runtime.payload(specs, source="test", env=master))
    envs = {
        s.name: environ(wait_for(lambda n=s.name: sandbox.running(n), 10, f"{s.name} running")) for s in specs
    }

    # The documented default: the master's environment, the daemon's user's HOME/USER/LOGNAME.
    assert envs["plain"]["SECRET_TOKEN"] == SECRET and "DATABASE_URL" in envs["plain"]
    cleared = envs["cleared"]
    assert "SECRET_TOKEN" not in cleared and "DATABASE_URL" not in cleared, cleared
    assert cleared["PATH"] == master["PATH"] and cleared["LANG"] == "C.UTF-8" and cleared["LC_TIME"] == "C"
    assert (cleared["HOME"], cleared["USER"], cleared["LOGNAME"]) == ("/nonexistent", "nobody", "nobody")
    assert cleared["SHELL"] and cleared["OWN"] == "cleared"
    assert set(cleared) <= {"PATH", "LANG", "LC_TIME", "HOME", "USER", "LOGNAME", "SHELL", "OWN"}, cleared
    kept = envs["kept"]
    assert kept["SECRET_TOKEN"] == SECRET and "DATABASE_URL" not in kept and kept["OWN"] == "kept"


def test_env_clear_and_env_keep_are_validated_naming_the_daemon_and_key(tmp_path: Path) -> None:
    def error(**keys: object) -> str:
        with pytest.raises(ConfigError) as info:
            parse_declarations({"w": {"command": "sleep 1", **keys}}, base_dir=str(tmp_path))
        return str(info.value)

    assert "daemon 'w', key 'env_clear': must be true or false" in error(env_clear="yes")
    assert "daemon 'w', key 'env_keep': must be a list of variable names" in error(
        env_clear=True, env_keep="A"
    )
    assert "daemon 'w', key 'env_keep': variable name 'A=B'" in error(env_clear=True, env_keep=["A=B"])
    assert "daemon 'w', key 'env_keep': only applies with env_clear" in error(env_keep=["A"])
    (spec,) = parse_declarations(
        {"w": {"command": "sleep 1", "env_clear": True, "env_keep": ["B", "A", "B"]}}, base_dir=str(tmp_path)
    )
    assert (spec.env_clear, spec.env_keep) == (True, ("A", "B"))
    assert DaemonSpec.from_wire(spec.to_wire()) == spec
