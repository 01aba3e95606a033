"""Which process layer the tests and the supervisors they start use (docs/process-model.md, "The
portable layer"): ``ATTACHDAEMON_PLATFORM=portable`` in the environment forces the portable layer
on Linux, in this process and in every supervisor it starts (they inherit the variable)."""

from __future__ import annotations

import pytest

from attachdaemon_core.osproc import layer

PORTABLE = layer.PORTABLE


def not_on_portable(guarantee: str) -> pytest.MarkDecorator:
    """Skip a test of a guarantee the portable layer documents it does not make."""
    return pytest.mark.skipif(
        PORTABLE, reason=f"portable layer: {guarantee} (docs/process-model.md#the-portable-layer)"
    )


def exit_notice() -> float:
    """How late the supervisor may hear that a process which is not its child exited (an owner,
    a smart daemon): at once through a pidfd; within one poll on the portable layer without kqueue."""
    if not PORTABLE:
        return 0.0
    from attachdaemon_core.osproc.exitwatch import POLL_INTERVAL, WATCHES

    return 0.0 if WATCHES.use_kqueue else POLL_INTERVAL


TOUCH_POLL = 1.0 if PORTABLE else 0.0  # without inotify, touch files are stat()ed every second
