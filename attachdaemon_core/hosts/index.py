"""The index of this user's supervisors (``<root>/attachdaemon-<uid>/index/``, docs/process-model.md):
read for ``status`` when it finds no supervisor where it looked, and rid of the entries of
supervisors that are verifiably gone (a supervisor records itself there and never removes its entry).

Runs in host processes (the CLI). It never signals anything: an entry is judged from /proc and from
whether anything accepts a connection on its control socket.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from attachdaemon_core.control import client
from attachdaemon_core.osproc.layer import LIVE
from attachdaemon_core.osproc.paths import user_root

__all__ = ["read_index", "supervisor_alive"]


def supervisor_alive(pid: int) -> bool:
    """Whether ``pid`` can still be a supervisor: a live process (not a zombie) running our package
    (the supervisor is forked from ``python -m attachdaemon_core guard``, so it shows that command)."""
    st = LIVE.stat(pid)
    if st is None or st.state in ("Z", "X"):
        return False
    return "attachdaemon_core" in " ".join(LIVE.cmdline(pid))


def read_index(
    *,
    alive: Callable[[int], bool] = supervisor_alive,
    listening: Callable[[str], bool] = client.listening,
) -> list[dict[str, Any]]:
    """Every live supervisor recorded under this user's root; an entry is removed only when both its
    pid is no supervisor and nothing listens on its control socket (``alive`` and ``listening`` are
    the seams a unit test fakes). An entry that cannot be read or judged is kept and not listed."""
    index = os.path.join(user_root(), "index")
    try:
        names = sorted(os.listdir(index))
    except OSError:
        return []
    entries = []
    for name in names:
        if name.startswith(".") or not name.endswith(".json"):
            continue  # a supervisor's write in progress (NAME.json.X.tmp), or an entry being removed
        path = os.path.join(index, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            entry = _load(fd)
            if entry is None:
                continue
            if alive(entry["pid"]):
                entries.append(entry)
            elif not listening(entry["runtime_dir"]):
                _remove_judged(path, fd)
        finally:
            os.close(fd)
    return entries


def _load(fd: int) -> dict[str, Any] | None:
    """The entry in the open file ``fd``, or None when it is not one (a pid and a runtime directory)."""
    try:
        with open(fd, closefd=False) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    pid, runtime_dir = entry.get("pid"), entry.get("runtime_dir")
    if type(pid) is not int or pid <= 0 or not isinstance(runtime_dir, str) or not runtime_dir:
        return None
    return entry


def _remove_judged(path: str, fd: int) -> None:
    """Remove the entry judged stale, the file open as ``fd``, and nothing else.

    A supervisor starting meanwhile replaces the entry with a new file (an atomic rename over it),
    so the entry is first moved aside, then compared with the judged file; a newer one goes back,
    unless an even newer one is in its place already.
    """
    judged = os.fstat(fd)
    aside = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.urandom(4).hex()}.stale")
    try:
        os.rename(path, aside)
    except OSError:
        return  # gone already
    moved = os.lstat(aside)
    if (moved.st_dev, moved.st_ino) != (judged.st_dev, judged.st_ino):
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # an even newer entry is in place
        except OSError:
            with contextlib.suppress(OSError):
                os.rename(aside, path)  # no hard links here: put it back as it was
            return
    with contextlib.suppress(OSError):
        os.unlink(aside)
