"""The warnings (and E002) a ``check`` command shows for parsed specs: :func:`check_specs`.

Nothing here is raised: a program or directory may appear later, and privileges depend on the
user the server runs as (docs/declarations.md).
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Sequence

from attachdaemon_core.spec.model import DaemonSpec, Problem

if sys.platform != "win32":
    import grp
    import pwd

__all__ = ["POSTGRES_PROGRAMS", "check_specs"]

POSTGRES_PROGRAMS = frozenset({"postgres", "postmaster", "pg_ctl"})


def check_specs(specs: Sequence[DaemonSpec]) -> list[Problem]:
    """Warnings (W001 missing executable, W002 missing cwd, W003 PostgreSQL on SIGTERM, W004 what
    was dropped from a uWSGI line, W005 a pidfile directory missing or not writable, W006 a pidfile
    in a world-writable directory) and E002.

    None of these is raised: a program or directory may appear later, and privileges depend on
    the user the server runs as.
    """
    problems: list[Problem] = []
    for spec in specs:
        problems += spec.extra.get("notes", ())
        problems += _check_program(spec)
        problems += _check_cwd(spec)
        problems += _check_postgres(spec)
        problems += _check_privileges(spec)
        problems += _check_pidfile_dir(spec)
        problems += _check_pidfile_world_writable(spec)
    return problems


def _check_pidfile_dir(spec: DaemonSpec) -> list[Problem]:
    """W005: a pidfile directory that does not exist (created at start) or that the process
    writing the pidfile may not write (the daemon itself, or the supervisor for smart2)."""
    if spec.pidfile is None:
        return []
    directory = os.path.dirname(spec.pidfile) or "."
    if not os.path.isdir(directory):
        message = f"directory {directory} of the pidfile does not exist"
        hint = "the supervisor creates it at start, owned by the daemon's user"
        return [Problem(message, daemon=spec.name, key="pidfile", hint=hint, code="W005")]
    writer = None if spec.daemonize else spec.user
    if writer is None:
        if os.access(directory, os.W_OK):
            return []
        who = "this user"
    else:
        try:
            pw = pwd.getpwuid(int(writer)) if writer.isascii() and writer.isdigit() else pwd.getpwnam(writer)
        except (KeyError, ValueError):
            return []  # an unknown user is reported elsewhere
        if _writable_by(directory, pw.pw_uid, os.getgrouplist(pw.pw_name, pw.pw_gid)):
            return []
        who = f"user {pw.pw_name!r}"
    message = f"directory {directory} of the pidfile is not writable by {who}, which writes the pidfile"
    hint = "the daemon would never be adopted: choose a directory it may write"
    return [Problem(message, daemon=spec.name, key="pidfile", hint=hint, code="W005")]


def _check_pidfile_world_writable(spec: DaemonSpec) -> list[Problem]:
    """W006: a pidfile in a directory every local user may write (sticky /tmp included), where
    anyone can put a pidfile first, naming a process of theirs."""
    if spec.pidfile is None:
        return []
    directory = os.path.dirname(spec.pidfile) or "."
    try:
        st = os.stat(directory)
    except OSError:
        return []
    if not st.st_mode & stat.S_IWOTH:
        return []
    sticky = " (sticky)" if st.st_mode & stat.S_ISVTX else ""
    message = f"directory {directory} of the pidfile is writable by every user{sticky}"
    hint = (
        "any local user may write the pidfile first; a root supervisor refuses a process that is not "
        "the daemon's user, but put pidfiles in a directory only the daemon's user may write"
    )
    return [Problem(message, daemon=spec.name, key="pidfile", hint=hint, code="W006")]


def _writable_by(directory: str, uid: int, gids: list[int]) -> bool:
    st = os.stat(directory)
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _check_program(spec: DaemonSpec) -> list[Problem]:
    program = spec.command[0]
    if "/" not in program:
        bindir = os.path.dirname(sys.executable)
        if _which(program, bindir) or _which(program, os.environ.get("PATH", os.defpath)):
            return []
        message = f"executable {program!r} not found in {bindir} or PATH"
    elif os.path.isfile(program) and os.access(program, os.X_OK):
        return []
    else:
        message = f"{program} is not an executable file"
    hint = "it is looked up again at each start"
    return [Problem(message, daemon=spec.name, key="command", hint=hint, code="W001")]


def _which(program: str, path: str) -> bool:
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return True
    return False


def _check_cwd(spec: DaemonSpec) -> list[Problem]:
    if spec.cwd is None or os.path.isdir(spec.cwd):
        return []
    message = f"directory {spec.cwd} does not exist"
    return [Problem(message, daemon=spec.name, key="cwd", code="W002")]


def _check_postgres(spec: DaemonSpec) -> list[Problem]:
    programs = {os.path.basename(spec.command[0]), os.path.basename(spec.process_name or "")}
    if spec.shell:
        programs.add(os.path.basename(spec.command[-1].split("exec ", 1)[-1].split(" ")[0]))
    if not programs & POSTGRES_PROGRAMS or spec.stop_signal != signal.SIGTERM:
        return []
    message = "PostgreSQL's SIGTERM is a smart shutdown that waits for every client to disconnect"
    hint = "set stop_signal to SIGINT, its fast shutdown"
    return [Problem(message, daemon=spec.name, key="stop_signal", hint=hint, code="W003")]


def _check_privileges(spec: DaemonSpec) -> list[Problem]:
    if sys.platform == "win32" or os.geteuid() == 0:
        return []
    problems = []
    euid = os.geteuid()
    if spec.user is not None and _uid(spec.user) != euid:
        message = f"cannot switch to user {spec.user!r}: running as uid {euid}, not root"
        problems.append(Problem(message, daemon=spec.name, key="user", code="E002"))
    if spec.group is not None and _gid(spec.group) not in {os.getgid(), os.getegid()}:
        message = f"cannot switch to group {spec.group!r}: running as uid {euid}, not root"
        problems.append(Problem(message, daemon=spec.name, key="group", code="E002"))
    return problems


def _uid(user: str) -> int | None:
    if (user.isascii() and user.isdigit()) or sys.platform == "win32":
        return int(user) if user.isascii() and user.isdigit() else None
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _gid(group: str) -> int | None:
    if (group.isascii() and group.isdigit()) or sys.platform == "win32":
        return int(group) if group.isascii() and group.isdigit() else None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None
