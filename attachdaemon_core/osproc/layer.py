"""Which process layer this process uses (docs/process-model.md, "The portable layer").

``linux``: pidfds, inotify, the child subreaper, the parent-death signal and /proc read by hand
(``proc.py``). ``portable``: psutil, kqueue where the platform has it and polling otherwise
(``portable.py``, ``exitwatch.py``). Chosen once, at import: ``linux`` when this is Linux, /proc
is mounted and ``pidfd_open`` works (kernel 5.3 and later), else ``portable``. The environment
variable ``ATTACHDAEMON_PLATFORM=linux|portable`` forces one (CI runs the portable layer on Linux
that way); psutil is imported only when the portable layer is chosen.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from attachdaemon_core.osproc import proc

VARIABLE = "ATTACHDAEMON_PLATFORM"
CHOICES = ("linux", "portable")


class PlatformError(ValueError):
    """``ATTACHDAEMON_PLATFORM`` names no layer this system can run; the message says the fix."""


def linux_works() -> bool:
    """Linux, with /proc mounted and a working ``pidfd_open`` (5.3+; some containers refuse it)."""
    if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/stat"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


def choose(environ: Mapping[str, str] | None = None) -> str:
    """The layer to use: the variable's, or the automatic choice; PlatformError for a bad value."""
    raw = (os.environ if environ is None else environ).get(VARIABLE, "").strip()
    if not raw:
        return "linux" if linux_works() else "portable"
    if raw not in CHOICES:
        raise PlatformError(
            f"{VARIABLE}={raw!r} is not one of {', '.join(CHOICES)}; unset it to choose automatically"
        )
    if raw == "linux" and not linux_works():
        raise PlatformError(
            f"{VARIABLE}=linux, but this system has no working pidfd_open or no /proc "
            "(Linux 5.3 or later is needed); set it to portable or unset it"
        )
    return raw


def _initial() -> tuple[str, str | None]:
    try:
        return choose(), None
    except PlatformError as exc:  # reported by the host before it starts anything (hosts/runtime.join)
        return ("linux" if linux_works() else "portable"), str(exc)


NAME, ERROR = _initial()
PORTABLE = NAME == "portable"

LIVE: proc.Live = proc.LIVE
if PORTABLE:
    try:
        from attachdaemon_core.osproc.portable import Portable
    except (ImportError, NotImplementedError) as exc:  # no psutil, or psutil has no port here
        # The hosts refuse to start anything with this message (hosts/runtime.join), instead of
        # the package failing to import; LIVE stays the linux reads, which nothing then uses.
        ERROR = ERROR or (
            f"the portable process layer needs psutil, which cannot be loaded here ({exc}); "
            "install it (pip install psutil) on a platform it supports (docs/process-model.md, "
            '"Platforms")'
        )
    else:
        LIVE = Portable()
