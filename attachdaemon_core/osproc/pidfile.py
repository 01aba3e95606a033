"""Read, verify and write pidfiles, so a reused or foreign pid is never adopted or signalled.

Runs in the supervisor process. A pidfile is trusted only when the file itself is sane (a small
regular file owned by us, root or the process it names) and the process it names is the daemon:
alive, not a zombie, no younger than the file, and running the declared program.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass

from attachdaemon_core.osproc import proc
from attachdaemon_core.osproc.layer import LIVE

MAX_PIDFILE_BYTES = 4096
# A pid that started more than this after the pidfile was written is a reused pid.
START_SLACK_SECONDS = 2.0
INTERPRETERS = ("python", "perl", "ruby", "node", "sh", "bash", "dash", "java", "php")


@dataclass(frozen=True)
class PidfileRead:
    """The result of reading a pidfile: a pid, or None and the reason."""

    pid: int | None
    reason: str
    mtime: float = 0.0
    file_uid: int = -1


def read_pidfile(path: str) -> PidfileRead:
    """Read the first line of ``path`` as a pid, refusing links, FIFOs and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return PidfileRead(None, "pidfile does not exist")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the path is a symlink
            return PidfileRead(None, "pidfile is a symbolic link; refused")
        return PidfileRead(None, f"pidfile unreadable: {exc.strerror}")
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            return PidfileRead(None, "pidfile is not a regular file; refused")
        if st.st_size > MAX_PIDFILE_BYTES:
            return PidfileRead(None, f"pidfile is larger than {MAX_PIDFILE_BYTES} bytes; refused")
        data = os.read(fd, MAX_PIDFILE_BYTES + 1)
    finally:
        os.close(fd)
    first = data.split(b"\n", 1)[0].strip()
    if not first:
        return PidfileRead(None, "pidfile is empty", st.st_mtime, st.st_uid)
    try:
        pid = int(first.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        shown = first[:40].decode("ascii", "replace")
        return PidfileRead(None, f"pidfile does not hold a pid: {shown!r}", st.st_mtime, st.st_uid)
    if pid < 2 or pid > LIVE.pid_max():
        return PidfileRead(None, f"pidfile holds {pid}, not a daemon's pid", st.st_mtime, st.st_uid)
    return PidfileRead(pid, "ok", st.st_mtime, st.st_uid)


def _names_program(pid: int, programs: tuple[str, ...], procs: proc.Live) -> bool:
    """Whether the process runs one of ``programs`` (realpath of exe, else argv[0]/argv[1])."""
    wanted_paths = {os.path.realpath(p) for p in programs if os.sep in p}
    wanted_names = {os.path.basename(p) for p in programs}
    exe = procs.exe(pid)
    if exe is not None:
        if exe in wanted_paths or os.path.basename(exe) in wanted_names:
            return True
        if not any(os.path.basename(exe).startswith(i) for i in INTERPRETERS):
            return False
    argv = procs.cmdline(pid)
    for arg in argv[:2]:
        if arg in wanted_paths or os.path.basename(arg) in wanted_names:
            return True
        # "postgres: main: checkpointer" style titles name the program first.
        if arg.split(":", 1)[0] in wanted_names:
            return True
    return False


MARKER_VAR = "ATTACHDAEMON_PIDFILE"


def marker(path: str) -> bytes:
    """The environment entry every process of a smart daemon's launch carries: it tells a daemon
    started through a launcher (a wrapper script, ``sh``, a console script) from a stranger."""
    return f"{MARKER_VAR}={os.path.realpath(path)}".encode()


def verify(
    pid: int,
    *,
    programs: tuple[str, ...],
    mtime: float,
    file_uid: int,
    ours: bool = False,
    mark: bytes | None = None,
    as_root_uid: int | None = None,
    procs: proc.Live = LIVE,
) -> str | None:
    """Return None when ``pid`` is the daemon a pidfile with ``mtime`` names, else the reason.

    ``ours``: the pid was produced by the launch we are waiting on, so it is the daemon whatever
    it runs (the start-time and program checks guard only pidfiles we did not just produce).
    ``mark``: a process started with this environment entry was launched for this pidfile by a
    supervisor of ours, so it passes the program check whatever it runs.
    ``as_root_uid``: given when the supervisor runs as root, the uid the daemon runs as (the
    declared user, else root). A process we did not just launch must run as that uid, and the
    pidfile must be owned by root or that uid: any local user can start a program with the
    daemon's name and write its pid into a file, but only the daemon's own user can do so as it.
    ``procs``: where /proc is read (the live system; the engine passes its OS seam).
    """
    if pid == procs.getpid() or pid == procs.getppid():
        return f"pid {pid} is the supervisor or its parent"
    st = procs.stat(pid)
    if st is None:
        return f"no process {pid}"
    if st.state in ("Z", "X"):
        return f"process {pid} is a zombie"
    my_uid = procs.geteuid()
    owner = procs.owner_uid(pid)
    if file_uid not in (my_uid, 0) and file_uid != owner:
        return f"pidfile is owned by uid {file_uid}, neither us, root nor process {pid}'s owner"
    if ours:
        return None
    if as_root_uid is not None:
        if owner != as_root_uid:
            return (
                f"process {pid} runs as uid {owner}, not as the daemon's uid {as_root_uid}; refused "
                "(a daemon that switches user itself, like memcached -u, needs that user declared)"
            )
        if file_uid not in (0, as_root_uid):
            return f"pidfile owned by uid {file_uid}, not root nor the daemon's uid {as_root_uid}; refused"
    younger = st.started_at - mtime  # through the boot clock (proc.wall_from_ticks), not btime
    if younger > START_SLACK_SECONDS:
        return f"process {pid} started after the pidfile was written (a reused pid, {younger:.1f}s younger)"
    if not _names_program(pid, programs, procs) and not (mark is not None and procs.has_env(pid, mark)):
        shown = procs.exe(pid) or " ".join(procs.cmdline(pid)[:2]) or st.comm
        return f"process {pid} runs {shown}, not {programs[0]}"
    return None


def write_pidfile(path: str, pid: int) -> None:
    """Write ``pid`` atomically: a temporary file in the same directory, then rename over."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{pid}\n".encode())
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def remove_if_names(path: str, pid: int) -> bool:
    """Remove the pidfile only if it still names ``pid``."""
    if read_pidfile(path).pid != pid:
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
