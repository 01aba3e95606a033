"""The only place that creates daemon processes.

Runs in the single-threaded supervisor, which makes a plain ``fork()`` safe. The child, before it
execs the daemon's argv directly (never through a shell): starts a new session, points stdio where
the spec says, drops privileges, sets umask and cwd, sets a parent-death SIGKILL for attached
daemons (after the uid change, then checks that its parent is still the supervisor), restores
default signal dispositions and closes every other descriptor. An exec failure comes back to the
parent over a close-on-exec pipe, so "cannot start" is reported with its reason at once.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc: ctypes.CDLL | None = None

# Signals the supervisor catches or ignores; the daemon gets default dispositions for them.
_RESET_SIGNALS = (
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGQUIT,
)


def prctl(option: int, value: int) -> bool:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class SpawnError(Exception):
    """The daemon could not be started; the message says why."""


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    name: str


def resolve_credentials(user: str | None, group: str | None) -> Credentials | None:
    """Look up ``user``/``group`` (names or ids); None means keep ours."""
    if user is None and group is None:
        return None
    if user is not None:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        uid, gid, home, name = pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_name
    else:
        uid, gid, home, name = os.getuid(), os.getgid(), os.environ.get("HOME", "/"), ""
    if group is not None:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    groups = tuple(os.getgrouplist(name, gid)) if name else (gid,)
    return Credentials(uid=uid, gid=gid, groups=groups, home=home, name=name)


def resolve_program(program: str, path: str | None) -> str:
    """A bare name is looked up in the interpreter's bin/ first, then in PATH."""
    if os.sep in program:
        return program
    venv_bin = os.path.dirname(sys.executable)
    candidate = os.path.join(venv_bin, program)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(program, path=path)
    if found is None:
        raise SpawnError(f"executable {program!r} not found in {venv_bin} or PATH")
    return found


@dataclass(frozen=True, kw_only=True)
class SpawnRequest:
    """Everything the child needs; built by the supervisor from a DaemonSpec."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None = None
    credentials: Credentials | None = None
    umask: int | None = None
    stdin_fd: int | None = None  # None: /dev/null
    stdout_fd: int | None = None  # None: inherit ours
    stderr_fd: int | None = None
    parent_death_signal: int | None = None


def spawn(req: SpawnRequest) -> int:
    """Fork and exec ``req``; return the child's pid or raise SpawnError with the reason."""
    program = resolve_program(req.argv[0], req.env.get("PATH"))
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which execs or _exits
            _child(req, program, devnull, wfd, parent)
        os.close(wfd)
        wfd = -1
        report = b""
        while chunk := os.read(rfd, 4096):
            report += chunk
    finally:
        os.close(rfd)
        os.close(devnull)
        if wfd >= 0:
            os.close(wfd)
    if report:
        # The child failed before exec and has _exited; reap it here so nobody sees it as a daemon.
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise SpawnError(report.decode("utf-8", "replace"))
    return pid


def _child(req: SpawnRequest, program: str, devnull: int, wfd: int, parent: int) -> None:
    """In the forked child: set everything up and exec; report any failure on ``wfd``."""
    step = "setup"
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))
        signal.set_wakeup_fd(-1)
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        step = "setsid"
        os.setsid()
        step = "stdio"
        os.dup2(req.stdin_fd if req.stdin_fd is not None else devnull, 0)
        if req.stdout_fd is not None:
            os.dup2(req.stdout_fd, 1)
        if req.stderr_fd is not None:
            os.dup2(req.stderr_fd, 2)
        creds = req.credentials
        if creds is not None:
            step = f"switch to uid {creds.uid} gid {creds.gid}"
            if os.getuid() == 0:
                os.setgroups(list(creds.groups))
            os.setgid(creds.gid)
            os.setuid(creds.uid)
        if req.umask is not None:
            os.umask(req.umask)
        if req.cwd is not None:
            step = f"chdir {req.cwd}"
            os.chdir(req.cwd)
        if req.parent_death_signal is not None:
            prctl(PR_SET_PDEATHSIG, req.parent_death_signal)
            if os.getppid() != parent:
                os._exit(1)
        os.closerange(3, wfd)
        os.closerange(wfd + 1, 65536)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        step = f"exec {program}"
        os.execve(program, list(req.argv), dict(req.env))
    except BaseException as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EINVAL
        try:
            os.write(wfd, f"{step}: {reason} (errno {code})".encode())
        finally:
            os._exit(127)
