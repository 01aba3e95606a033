"""Issue 15: the samples keep their data (pidfiles, the PostgreSQL cluster) out of /tmp, in a
directory no other user can write, which the postgres user still reaches when root runs them."""

from __future__ import annotations

import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from tests.security.attacker import needs_root

SAMPLES = Path(__file__).resolve().parent.parent.parent / "sample_projects"


@needs_root
@pytest.mark.parametrize("sample", ["django", "flask"])
def test_as_root_the_sample_run_directory_is_out_of_tmp_and_reachable_by_postgres(
    sample: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMPLE_RUN_DIR", raising=False)
    monkeypatch.syspath_prepend(str(SAMPLES))
    import sample_daemons

    run_dir = sample_daemons.layout(sample).run_dir
    assert not str(run_dir).startswith(("/tmp/", "/var/tmp/", "/dev/shm/")), run_dir
    sample_daemons.declarations(sample)  # creates it as the demo does
    for part in [*reversed(run_dir.parents), run_dir]:
        st = part.stat()
        assert not st.st_mode & stat.S_IWOTH, f"{part} is writable by every user"
        assert st.st_uid == 0, f"{part} is not root's"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to try the path with")
    reach = subprocess.run(
        [
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
            "test",
            "-x",
            str(run_dir),
        ],
        check=False,
        cwd="/",
    )
    assert reach.returncode == 0, f"the postgres user cannot pass through {run_dir}"
