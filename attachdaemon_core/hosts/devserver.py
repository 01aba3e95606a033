"""Owning the supervisor from a dev server (reloader parent and children) or an opted-in process.

Runs in the host: Django's runserver, ``flask run``, ``app.run()``, or any process with
``ATTACH_DAEMONS_AUTOSTART``. A reloader's parent lives as long as the dev server, so it is the
owner; each reloader child announces the declarations it has just read. The first child's
announcement only diffs them (the parent has just applied the same); every later child's is a
server reload (docs/events.md). When the parent could not join (its code was broken at start), the first
child registers the parent as the owner.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Mapping
from typing import Any

from attachdaemon_core.control import client
from attachdaemon_core.hosts import runtime
from attachdaemon_core.osproc.layer import LIVE

RELOADER_CHILD_VARIABLES = ("RUN_MAIN", "WERKZEUG_RUN_MAIN")
MARKER_PREFIX = "devserver-"


def in_reloader_child() -> bool:
    """True in the child of Django's or werkzeug's reloader (the parent is the owner)."""
    return any(os.environ.get(name) == "true" for name in RELOADER_CHILD_VARIABLES)


def attach(runtime_dir: str, decl: Mapping[str, Any], *, stop_wait: float) -> None:
    """Join as this process (a reloader parent, a server, an opted-in process) or announce as a child."""
    if in_reloader_child():
        announce_child(runtime_dir, decl)
    else:
        own(runtime_dir, decl, stop_wait=stop_wait)


def own(runtime_dir: str, decl: Mapping[str, Any], *, stop_wait: float) -> None:
    """This process owns the supervisor; at its exit it releases and waits for the final stop."""
    me = os.getpid()
    runtime.join(runtime_dir, me, decl)
    _forget_stale_markers(runtime_dir)
    # Forked children (uWSGI or gunicorn workers) inherit atexit handlers: only we release.
    atexit.register(_release_at_exit, runtime_dir, me, stop_wait)


def _release_at_exit(runtime_dir: str, owner: int, wait: float) -> None:
    if os.getpid() == owner:
        runtime.release(runtime_dir, owner, wait=wait)


def announce_child(runtime_dir: str, decl: Mapping[str, Any]) -> None:
    """A reloader child: announce fresh declarations for the parent (a reload, except the first)."""
    parent = os.getppid()
    runtime.ensure_dir(runtime_dir)
    first = _claim_first(runtime_dir, parent)
    try:
        client.call(
            runtime_dir,
            "reload",
            owner=runtime.owner_identity(parent),
            declarations=dict(decl),
            policies=not first,
        )
    except client.NoSupervisor:
        # The parent could not start it (broken code at start): register the parent now.
        runtime.join(runtime_dir, parent, decl, announce="reload")


def _marker(runtime_dir: str, pid: int) -> str | None:
    st = LIVE.stat(pid)
    if st is None:
        return None
    return os.path.join(runtime_dir, f"{MARKER_PREFIX}{pid}-{st.starttime}")


def _claim_first(runtime_dir: str, parent: int) -> bool:
    """True for the first child of this parent to announce (an exclusive marker file says so)."""
    path = _marker(runtime_dir, parent)
    if path is None:
        return True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _forget_stale_markers(runtime_dir: str) -> None:
    """Remove the markers of reloader parents that are gone (by pid and start time)."""
    try:
        names = os.listdir(runtime_dir)
    except OSError:
        return
    for name in names:
        if not name.startswith(MARKER_PREFIX):
            continue
        pid_text, _, start = name[len(MARKER_PREFIX) :].partition("-")
        st = LIVE.stat(int(pid_text)) if pid_text.isdigit() else None
        if st is None or str(st.starttime) != start:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(runtime_dir, name))
