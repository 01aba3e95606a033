"""A real missing package for a child process: a ``sitecustomize`` whose meta-path finder refuses
some top-level names, put first on the child's PYTHONPATH.

The child then fails ``import redis`` (or ``psycopg``) exactly as on a machine without the
package: ``ModuleNotFoundError: No module named 'redis'``. Nothing in this process is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = '''\
import sys

BLOCKED = {blocked!r}
ANNOUNCE = {announce!r}


class _Blocker:
    """Refuses BLOCKED packages (and their submodules) as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            if ANNOUNCE:
                sys.stderr.write(f"import blocker: refusing {{name}}\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


def blocker_dir(where: Path, *names: str, announce: bool = False) -> Path:
    """A directory holding a ``sitecustomize.py`` that blocks ``names`` (saying so on stderr
    with ``announce``)."""
    where.mkdir(parents=True, exist_ok=True)
    text = SITECUSTOMIZE.format(blocked=sorted(names), announce=announce)
    (where / "sitecustomize.py").write_text(text)
    return where


def pythonpath_with(blocker: Path, current: str | None) -> str:
    """PYTHONPATH with the blocker first (a ``sitecustomize`` is imported from the first hit)."""
    return os.pathsep.join([str(blocker), *([current] if current else [])])


# The daemons of a declaration set whose leader backends need a client package each:
# daemon -> (the package the backend imports, the extra that installs it).
LEADER_CLIENTS = {"beat": ("redis", "redis"), "pgbeat": ("psycopg", "postgres")}
LEADER_BACKENDS = {
    "beat": "redis://:hunter2@127.0.0.1:1/0",
    "pgbeat": "postgresql://app:hunter2@127.0.0.1:1/app",
}


def assert_missing_clients_named(text: str) -> None:
    """Each daemon of LEADER_CLIENTS named with its key, package and extra (on one line, or the
    extra on the next as Django's HINT); no password anywhere."""
    lines = text.splitlines()
    for daemon, (package, extra) in LEADER_CLIENTS.items():
        where = f"daemon {daemon!r}, key 'leader': "
        found = [i for i, line in enumerate(lines) if where in line]
        assert found, f"{where!r} not in:\n{text}"
        line, after = lines[found[0]], "\n".join(lines[found[0] : found[0] + 2])
        assert repr(package) in line and f"pip install 'attachdaemon[{extra}]'" in after, after
    assert "hunter2" not in text, text
