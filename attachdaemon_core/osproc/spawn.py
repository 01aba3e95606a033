"""The only place that creates daemon processes.

Runs in the single-threaded supervisor. The child, before it execs the daemon's argv directly
(never through a shell): starts a new session, points stdio where the spec says, drops
privileges (uid, gid, supplementary groups), sets umask and cwd, and closes every other
descriptor; attached daemons also get a parent-death SIGKILL, set after the uid change (not on
the portable layer, which has none: docs/process-model.md, "The portable layer"). An exec
failure is reported at once with its reason ("cannot start", never a silent respawn loop).
"""

from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from attachdaemon_core.osproc import layer
from attachdaemon_core.spec.model import DaemonSpec

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
_libc: ctypes.CDLL | None = None

# Dispositions a host may have left ignored (nohup, shells): the supervisor resets them at start,
# so its daemons begin with the defaults (exec keeps "ignored"; the mask is inherited too).
RESET_SIGNALS = (
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGQUIT,
    signal.SIGALRM,
)


def reset_signal_dispositions() -> None:
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def prctl(option: int, value: int) -> bool:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_process_name(name: str) -> None:
    """Name this process in /proc/PID/comm (what ``ps -o comm`` and ``top`` show), 15 bytes max.
    Linux only (prctl); elsewhere the process keeps its name."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


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
        pw = pwd.getpwuid(int(user)) if user.isascii() and user.isdigit() else pwd.getpwnam(user)
        uid, gid, home, name = pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_name
    else:
        uid, gid, home, name = os.getuid(), os.getgid(), os.environ.get("HOME", "/"), ""
    if group is not None:
        gid = int(group) if group.isascii() and group.isdigit() else grp.getgrnam(group).gr_gid
    groups = tuple(os.getgrouplist(name, gid)) if name else (gid,)
    return Credentials(uid=uid, gid=gid, groups=groups, home=home, name=name)


# What a daemon declared with ``env_clear`` starts from (docs/declarations.md): enough to run
# programs and format text, nothing of the master's secrets.
BASE_ENV = ("PATH", "LANG", "LANGUAGE", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment_for(master: Mapping[str, str], spec: DaemonSpec, creds: Credentials | None) -> dict[str, str]:
    """The environment ``spec``'s processes (the daemon, its probe, its leader hooks) start with.

    By default the master's environment (the server's own variables already removed by the host)
    plus the daemon's ``env``. With ``env_clear``: only a minimal base (PATH, LANG, LC_*, TZ) and
    the ``env_keep`` names from the master, with HOME, USER, LOGNAME and SHELL for its user; then
    the daemon's ``env``. A daemon with a ``user`` always gets that user's HOME, USER and LOGNAME.
    """
    if spec.env_clear:
        keep = set(BASE_ENV) | set(spec.env_keep)
        env = {k: v for k, v in master.items() if k in keep or k.startswith("LC_")}
        env.setdefault("PATH", DEFAULT_PATH)
        try:
            pw = pwd.getpwuid(creds.uid if creds is not None else os.getuid())
            env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name, SHELL=pw.pw_shell or "/bin/sh")
        except KeyError:  # a uid with no passwd entry: nothing to say about it
            pass
    else:
        env = dict(master)
    env.update(spec.env)
    if creds is not None and creds.name:
        env.update(HOME=creds.home, USER=creds.name, LOGNAME=creds.name)
    return env


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
    """Start ``req`` and return its pid, or raise SpawnError with the reason.

    ``subprocess`` does the child's set-up in C (vfork where it can: about 0.7 ms here, against
    ~2.7 ms for a fork of the supervisor running Python in the child). A parent-death signal needs
    a ``prctl`` in the child: ``setpriv --pdeathsig`` (util-linux) sets it after the uid change
    and execs the daemon in place; where setpriv is missing, a minimal ``preexec_fn`` does it
    and re-checks the parent (fork, slower). The Popen object is discarded: the supervisor reaps
    every child itself with ``waitpid(-1)``.
    """
    program = resolve_program(req.argv[0], req.env.get("PATH"))
    if not os.access(program, os.X_OK) or os.path.isdir(program):
        # Said here because with the setpriv shim the exec error would only reach its stderr.
        code = errno.ENOENT if not os.path.exists(program) else errno.EACCES
        raise SpawnError(f"exec {program}: {os.strerror(code)} (errno {code})")
    argv = [program, *req.argv[1:]]
    preexec = None
    if req.parent_death_signal is not None and not layer.PORTABLE:
        setpriv = _setpriv()
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", signal.Signals(req.parent_death_signal).name, "--", *argv]
        else:
            preexec = _parent_death(req.parent_death_signal, os.getpid())
    creds = req.credentials
    try:
        proc = subprocess.Popen(
            argv,
            executable=argv[0],
            env=dict(req.env),
            cwd=req.cwd,
            stdin=req.stdin_fd if req.stdin_fd is not None else subprocess.DEVNULL,
            stdout=req.stdout_fd,
            stderr=req.stderr_fd,
            close_fds=True,
            start_new_session=True,
            restore_signals=True,
            user=creds.uid if creds else None,
            group=creds.gid if creds else None,
            extra_groups=list(creds.groups) if creds and os.getuid() == 0 else None,
            umask=req.umask if req.umask is not None else -1,
            preexec_fn=preexec,  # noqa: PLW1509 - the supervisor is single-threaded
        )
    except OSError as exc:
        raise SpawnError(_describe(exc, program, req.cwd)) from None
    except subprocess.SubprocessError as exc:
        raise SpawnError(f"exec {program}: {exc}") from None
    proc.returncode = 0  # disown: Popen must never wait for it (we reap with waitpid(-1))
    return proc.pid


def _describe(exc: OSError, program: str, cwd: str | None) -> str:
    reason = exc.strerror or str(exc)
    code = exc.errno or errno.EINVAL
    if cwd is not None and exc.filename == cwd:
        return f"chdir {cwd}: {reason} (errno {code})"
    if exc.filename in (None, program) or isinstance(exc, (FileNotFoundError, PermissionError)):
        return f"exec {program}: {reason} (errno {code})"
    return f"{exc.filename}: {reason} (errno {code})"


_SETPRIV: list[str | None] = []


def _setpriv() -> str | None:
    if not _SETPRIV:
        _SETPRIV.append(shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin"))
    return _SETPRIV[0]


def _parent_death(sig: int, parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child, after the uid change, before exec
        prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
