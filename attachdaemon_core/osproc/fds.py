"""Descriptors made the same way on every platform (docs/process-model.md, "The portable layer").

``pipe``: Linux's ``pipe2`` makes a close-on-exec (and, if asked, non-blocking) pipe in one call;
macOS has no ``pipe2``, so there the pipe comes from ``os.pipe``, which Python already makes
non-inheritable (close-on-exec, PEP 446), and is made non-blocking afterwards. The difference is
one window in a process that forks from several threads at once; the supervisor does not."""

from __future__ import annotations

import os


def pipe(nonblock: bool = False) -> tuple[int, int]:
    """(read end, write end), both close-on-exec; both non-blocking when ``nonblock``."""
    if hasattr(os, "pipe2"):
        return os.pipe2(os.O_CLOEXEC | (os.O_NONBLOCK if nonblock else 0))
    r, w = os.pipe()
    if nonblock:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
    return r, w
