"""Linux inotify through ctypes: the supervisor hears of touch files and of its runtime directory
vanishing without polling. Where inotify is missing, and always on the portable layer (which
uses none: docs/process-model.md, "The portable layer"), ``Inotify.open()`` returns None and the
supervisor stats its touch files every second instead, only while some are declared; the
runtime directory's removal is then not heard of."""

from __future__ import annotations

import ctypes
import os
import selectors
import struct
from collections.abc import Callable

from attachdaemon_core.engine.loop import Timer, Timers
from attachdaemon_core.osproc import layer

IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

FILE_CHANGES = IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE
DIR_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_DELETE | IN_MOVED_FROM
_EVENT = struct.Struct("iIII")


class Inotify:
    """A non-blocking inotify descriptor; ``read()`` returns (watch, mask, name) tuples."""

    def __init__(self, fd: int, libc: ctypes.CDLL) -> None:
        self.fd = fd
        self._libc = libc

    @classmethod
    def open(cls) -> Inotify | None:
        if layer.PORTABLE:
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        except (OSError, AttributeError):
            return None
        return cls(fd, libc) if fd >= 0 else None

    def add(self, path: str, mask: int) -> int | None:
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        return wd if wd >= 0 else None

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            if not data:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                events.append((wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
                offset += _EVENT.size + length

    def close(self) -> None:
        os.close(self.fd)


class Watcher:
    """The supervisor's file watching: touch files' directories and its own runtime directory.

    With inotify, changes are reported as they happen and nothing polls; without it, touch
    files are checked every ``poll_every`` seconds (only while some are declared).
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        timers: Timers,
        runtime_dir: str,
        *,
        on_touched: Callable[[], None],
        on_runtime_event: Callable[[], None],
        runtime_names: tuple[str, ...],
        poll_every: float = 1.0,
    ) -> None:
        self.selector = selector
        self.timers = timers
        self.runtime_dir = runtime_dir
        self.on_touched = on_touched
        self.on_runtime_event = on_runtime_event
        self.runtime_names = runtime_names
        self.poll_every = poll_every
        self.inotify = Inotify.open()
        self.runtime_wd: int | None = None
        self.dirs: dict[str, int] = {}
        self.poll_timer: Timer | None = None
        if self.inotify is not None:
            selector.register(self.inotify.fd, selectors.EVENT_READ, self._on_events)
            self.watch_runtime_dir()

    def watch_runtime_dir(self) -> None:
        if self.inotify is not None:
            self.runtime_wd = self.inotify.add(self.runtime_dir, DIR_GONE)

    def watch_touch(self, paths: set[str]) -> None:
        """Watch the directories holding ``paths`` (a file may be replaced, not just touched)."""
        dirs = {os.path.dirname(p) for p in paths}
        if self.inotify is not None:
            for directory in dirs - set(self.dirs):
                wd = self.inotify.add(directory, FILE_CHANGES)
                if wd is not None:
                    self.dirs[directory] = wd
            for directory in set(self.dirs) - dirs:
                self.inotify.remove(self.dirs.pop(directory))
        polling_needed = bool(dirs) and not set(self.dirs) >= dirs
        if polling_needed and self.poll_timer is None:
            self.poll_timer = self.timers.call_later(self.poll_every, self._poll)
        elif not polling_needed and self.poll_timer is not None:
            self.poll_timer.cancel()
            self.poll_timer = None

    def _poll(self) -> None:
        self.poll_timer = self.timers.call_later(self.poll_every, self._poll)
        self.on_touched()

    def _on_events(self, _mask: int) -> None:
        assert self.inotify is not None
        runtime_event = touched = False
        for wd, mask, name in self.inotify.read():
            if wd == self.runtime_wd:
                gone = mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)
                runtime_event = runtime_event or bool(gone) or name in self.runtime_names
            else:
                touched = True
        if runtime_event:
            self.on_runtime_event()
        if touched:
            self.on_touched()
