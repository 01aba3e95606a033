"""Wording shared by log lines and status: signal names and OS errors, said one way everywhere."""

from __future__ import annotations

import signal


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, KeyError):
        return f"unknown user or group {exc.args[0]!r}" if exc.args else "unknown user or group"
    return str(exc)
