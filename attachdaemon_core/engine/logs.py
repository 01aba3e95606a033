"""Daemon output: ``prefix`` lines to the server's stderr, log files with copy-truncate rotation.

Runs in the supervisor. Writes to stderr never block the loop: when the reader is slow, lines wait
in a bounded queue and the excess is dropped with a counted notice.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import select
import selectors
import stat
from typing import Protocol

MAX_QUEUED_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024


class Output:
    """Non-blocking line writer to a descriptor we share with the server (its stderr)."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued = 0
        self.dropped = 0
        self.broken = False

    def write_line(self, text: str) -> None:
        if self.broken:
            return
        data = text.encode("utf-8", "replace") + b"\n"
        if self.queued + len(data) > MAX_QUEUED_BYTES:
            self.dropped += 1
            return
        self.queue.append(data)
        self.queued += len(data)
        self.flush()

    def flush(self) -> None:
        """Write what the descriptor accepts without blocking."""
        while self.queue and not self.broken:
            if self.dropped:
                notice = f"attachdaemon: {self.dropped} output lines dropped (stderr was not being read)\n"
                self.queue.appendleft(notice.encode())
                self.queued += len(notice)
                self.dropped = 0
            try:
                _, writable, _ = select.select([], [self.fd], [], 0)
            except (OSError, ValueError):
                self.broken = True
                return
            if not writable:
                return
            chunk = self.queue[0][:4096]  # at most PIPE_BUF: a writable pipe takes it whole
            try:
                n = os.write(self.fd, chunk)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.EBADF, errno.EIO):
                    self.broken = True  # a closed terminal: stop writing, keep supervising
                    return
                return
            head = self.queue.popleft()
            self.queued -= n
            if n < len(head):
                self.queue.appendleft(head[n:])

    @property
    def pending(self) -> bool:
        return bool(self.queue) and not self.broken


class LineSplitter:
    """Turns chunks read from a pipe into whole lines (over-long lines are cut)."""

    def __init__(self) -> None:
        self.partial = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self.partial + chunk
        parts = data.split(b"\n")
        self.partial = parts.pop()
        if len(self.partial) > MAX_LINE_BYTES:
            parts.append(self.partial)
            self.partial = b""
        return [p.rstrip(b"\r").decode("utf-8", "replace") for p in parts]

    def close(self) -> list[str]:
        rest, self.partial = self.partial, b""
        return [rest.decode("utf-8", "replace")] if rest else []


def private_file(path: str) -> None:
    """Create ``path`` mode 0600 if missing; tighten it to 0600 if it is a file of ours (a
    supervisor.log an older version left 0644). Never follows a symlink."""
    fd = os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC, 0o600
    )
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def private_dir(path: str) -> None:
    """Create directory ``path`` mode 0700, or tighten it to 0700 if it is ours."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


_NOFOLLOW = os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC


class LogFileRefused(OSError):
    """A log path that is not a plain file of its own (a symlink, a FIFO, a hard link)."""


def _open_plain(path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` without following a symlink, and only if it is a regular file with one link."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogFileRefused(errno.ELOOP, f"log file {path} is a symbolic link; refused") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} links"
        raise LogFileRefused(errno.EPERM, f"log file {path} is {what}; refused")
    os.set_blocking(fd, True)
    return fd


def open_log_file(path: str, *, private: bool = False, owner: tuple[int, int] | None = None) -> int:
    """Open ``path`` for appending, creating its directory; the daemon gets this fd as stdout/err.

    A file we create is 0600 (its directory 0755, or 0700 with ``private``: the runtime
    directory's ``logs/``, which is ours alone and then tightened if it was looser), and only a
    file we have just created (O_EXCL) is given to ``owner`` (uid, gid). A symlink, or anything
    but a regular file with one link, is refused (:class:`LogFileRefused`): the daemon's user may
    write the log's directory, and we may be root."""
    directory = os.path.dirname(path)
    if private:
        private_dir(directory)
    else:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND
    try:
        fd = _open_plain(path, flags | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return _open_plain(path, flags)
    if owner is not None:
        try:
            os.fchown(fd, *owner)
        except OSError:
            pass  # not root: the file is ours, the daemon writes it through this descriptor
    return fd


def rotate_if_needed(path: str, max_bytes: int, backups: int) -> bool:
    """Copy-truncate rotation: NAME.log -> NAME.log.1 … NAME.log.N, then truncate NAME.log.

    Never follows a symlink: a log that is not a plain file is left alone (its open refuses it),
    backups are renamed as they are (a link stays a link) and NAME.log.1 is always a new file."""
    try:
        fd = _open_plain(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size <= max_bytes:
            return False
        if backups > 0:
            for i in range(backups - 1, 0, -1):
                src = f"{path}.{i}"
                if os.path.lexists(src):
                    with contextlib.suppress(OSError):
                        os.replace(src, f"{path}.{i + 1}")
            with contextlib.suppress(OSError):
                _copy_private(fd, f"{path}.1")
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return True


def _copy_private(src_fd: int, dst: str) -> None:
    """Copy what ``src_fd`` holds to a new file ``dst``, mode 0600 (whatever was at ``dst`` is
    removed first, never written through)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dst)
    os.lseek(src_fd, 0, os.SEEK_SET)
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with open(out, "wb") as fout:
        while True:
            chunk = os.read(src_fd, 1 << 20)
            if not chunk:
                break
            fout.write(chunk)


def file_size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def lines_since(path: str, offset: int, lines: int = 5, limit: int = 4096) -> list[str]:
    """The last ``lines`` lines written to ``path`` after byte ``offset`` (at most ``limit``
    bytes read; a file rotated meanwhile is read from its start). Never follows a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        start = offset if offset <= size else 0
        os.lseek(fd, max(start, size - limit), os.SEEK_SET)
        data = os.read(fd, limit)
    except OSError:
        return []
    finally:
        os.close(fd)
    text = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return text[-lines:]


def tail_file(path: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a file (reads at most 1 MiB from its end); a path that is not
    a plain file (a symlink…) raises :class:`LogFileRefused`, never read through."""
    try:
        fd = _open_plain(path, os.O_RDONLY)
    except LogFileRefused:
        raise
    except OSError:
        return []
    try:
        with open(fd, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - MAX_QUEUED_BYTES))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    return text[-lines:] if lines > 0 else []


class LineSink(Protocol):
    @property
    def name(self) -> str: ...

    def add_line(self, line: str) -> None: ...


class Capture:
    """The read ends of ``prefix`` daemons' output pipes, in the supervisor's selector: each line
    goes to the daemon's ring buffer (for ``logs``) and to stderr as ``[name] line``."""

    def __init__(self, selector: selectors.BaseSelector, output: Output) -> None:
        self.selector = selector
        self.output = output
        self.pipes: dict[str, tuple[int, LineSplitter, LineSink]] = {}

    def open(self, sink: LineSink, fd: int) -> None:
        self.close(sink.name)
        self.pipes[sink.name] = (fd, LineSplitter(), sink)
        self.selector.register(fd, selectors.EVENT_READ, lambda _m: self._read(sink.name, fd))

    def read_now(self, name: str) -> None:
        """The writer may be gone: read what is there without blocking (EOF closes the pipe)."""
        entry = self.pipes.get(name)
        if entry is not None:
            with contextlib.suppress(OSError):
                self._read(name, entry[0])

    def close(self, name: str) -> None:
        entry = self.pipes.pop(name, None)
        if entry is None:
            return
        fd, splitter, sink = entry
        self._emit(sink, splitter.close())
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)
        os.close(fd)

    def close_all(self) -> None:
        """At exit: take what each pipe holds now, then close it."""
        for name in list(self.pipes):
            self.read_now(name)
            self.close(name)

    def _read(self, name: str, fd: int) -> None:
        entry = self.pipes.get(name)
        if entry is None or entry[0] != fd:
            return
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        _, splitter, sink = entry
        self._emit(sink, splitter.feed(chunk) if chunk else [])
        if not chunk:
            self.close(name)

    def _emit(self, sink: LineSink, lines: list[str]) -> None:
        for line in lines:
            sink.add_line(line)
            self.output.write_line(f"[{sink.name}] {line}")
