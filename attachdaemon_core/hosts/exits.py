"""The commands' exit codes, and the one place a failed control call becomes one.

Runs in the user's shell process. Needs the control client alone: ``attachdaemon status``
imports it on its fast path.
"""

from __future__ import annotations

from attachdaemon_core.control import client

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (about 2 ms): mypy reads it alike
if TYPE_CHECKING:
    from typing import TextIO

EXIT_OK = 0
EXIT_BAD = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_NO_SUPERVISOR = 4
RESPAWN_WAIT = 5.0  # how long a command waits for a supervisor's guard to start it again (within a second)


def control_failed(exc: client.NoSupervisor | client.ControlError, verb: str, err: TextIO) -> int:
    """Say why a control call for ``verb`` failed and return the exit code: 4 when no supervisor
    answered (its reason alone), 1 when it answered with an error (``verb: reason``)."""
    if isinstance(exc, client.NoSupervisor):
        err.write(f"{exc}\n")
        return EXIT_NO_SUPERVISOR
    err.write(f"{verb}: {exc}\n")
    return EXIT_BAD
