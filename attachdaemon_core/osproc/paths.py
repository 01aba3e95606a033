"""This user's private directories: the root that holds runtime directories, the index of
supervisors, pidfile locks and leader locks. Every directory is 0700 and must be ours.

Kept free of heavy imports: the supervisor, the guard and lock holders all use it.
"""

from __future__ import annotations

import os
import stat


class RuntimeDirError(Exception):
    """The runtime directory cannot be used safely; the message says why."""


def _temp_dir() -> str:
    """The temp directory as ``tempfile.gettempdir()`` finds it (without importing tempfile)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value and os.path.isdir(value):
            return os.path.abspath(value)
    return "/tmp"


def base_root() -> str:
    """``$XDG_RUNTIME_DIR`` when it exists, is ours and is 0700; else the temp directory."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st is not None and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700:
            return xdg
    return _temp_dir()


def user_root() -> str:
    return os.path.join(base_root(), f"attachdaemon-{os.geteuid()}")


def ensure_dir(path: str) -> None:
    """Create ``path`` mode 0700, or check an existing one is ours and not open to others.

    Missing parents below this user's root are created 0700 too (``os.makedirs`` would give them
    the umask's mode); our own root left looser by an older version is tightened, since it is ours.
    """
    root = user_root()
    try:
        if path == root or path.startswith(root + os.sep):
            _private_mkdir(root, tighten=True)
            _check_owned(root)
            for part in _components_below(root, path):
                _private_mkdir(part, tighten=False)
                _check_owned(part)
        else:
            os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise RuntimeDirError(f"cannot create runtime directory {path}: {exc.strerror}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"runtime directory {path} is not a directory; refused")
    if st.st_uid != os.geteuid():
        raise RuntimeDirError(
            f"runtime directory {path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}); refused"
        )
    if stat.S_IMODE(st.st_mode) & 0o066:  # 0711 (traversable, for a read-only uid) is fine
        raise RuntimeDirError(
            f"runtime directory {path} has mode {stat.S_IMODE(st.st_mode):o}, open to others; "
            "refused (it must be 0700)"
        )


def _check_owned(path: str) -> None:
    """Refuse a directory on the way to a runtime directory that another user could have made or
    may change: a symlink, not ours, or writable by others (in a shared /tmp, anyone may create
    ``attachdaemon-<uid>`` before our first run)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeDirError(f"runtime directory {path} is a symbolic link; refused")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"runtime directory {path} is not a directory; refused")
    if st.st_uid != os.geteuid():
        raise RuntimeDirError(
            f"runtime directory {path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}); "
            "refused (another user may have created it first: remove it)"
        )
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise RuntimeDirError(
            f"runtime directory {path} has mode {stat.S_IMODE(st.st_mode):o}, writable by others; refused"
        )


def check_runtime_dir(path: str) -> None:
    """For clients, before sending anything: ``path`` and the directories from this user's root
    down to it must be real directories of ours or root's that others may not write."""
    root = user_root()
    parts = [path]
    if path.startswith(root + os.sep):
        parts = [root, *_components_below(root, path)]
    for part in parts:
        st = os.lstat(part)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise RuntimeDirError(f"runtime directory {part} is not a directory (a symbolic link?); refused")
        if st.st_uid not in (os.geteuid(), 0):
            raise RuntimeDirError(
                f"runtime directory {part} belongs to uid {st.st_uid}, neither us (uid {os.geteuid()}) nor "
                "root; refused"
            )
        if stat.S_IMODE(st.st_mode) & 0o022:
            raise RuntimeDirError(
                f"runtime directory {part} has mode {stat.S_IMODE(st.st_mode):o}, writable by others; refused"
            )


def _components_below(root: str, path: str) -> list[str]:
    rel = os.path.relpath(path, root)
    parts = [] if rel == "." else rel.split(os.sep)
    return [os.path.join(root, *parts[: i + 1]) for i in range(len(parts))]


def _private_mkdir(path: str, *, tighten: bool) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        ours = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        if tighten and ours and stat.S_IMODE(st.st_mode) & 0o066:
            os.chmod(path, 0o700)


def private_subdir(name: str) -> str:
    """``<user root>/<name>``, created 0700 (index, pidfile locks, leader locks)."""
    path = os.path.join(user_root(), name)
    ensure_dir(path)
    return path


def open_for_traversal(path: str) -> None:
    """Let other users pass through ``path`` (0711: no listing, no writing) — only so that a
    read-only uid can reach the control socket, whose peer-credential check does the rest."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
        os.chmod(path, 0o711)  # noqa: S103 - traversal only: no listing, no writing


def short_digest(text: str) -> str:
    """A 16-hex-digit name for ``text`` (a path) without loading OpenSSL's hashlib (~4 MB)."""
    import zlib

    data = text.encode()
    return f"{zlib.crc32(data):08x}{zlib.crc32(data[::-1], 0x5BD1E995):08x}"
