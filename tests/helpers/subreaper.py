"""Run a command under a child subreaper that reaps every orphan at once.

usage: subreaper.py PROGRAM ARGS...

uWSGI decides whether a smart daemon lives with kill(pid, 0), which succeeds on a zombie: where
the machine's PID 1 reaps orphans slowly (containers), a killed smart daemon looks alive for
seconds. Under this wrapper its orphans are reaped at once, as on a host with a prompt init. It
exits once the command has exited and no child is left.
"""

from __future__ import annotations

import os
import signal
import sys

from attachdaemon_core.osproc.spawn import PR_SET_CHILD_SUBREAPER, prctl


def main(argv: list[str]) -> int:
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = os.fork()
    if child == 0:
        os.execv(argv[0], argv)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    code = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return code
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
