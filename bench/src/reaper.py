"""Fallback reaper when no C compiler is available: subreaper that runs CMD and reaps everything."""

import ctypes
import os
import sys

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
main_pid = os.fork()
if main_pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
code = 0
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if pid == main_pid:
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
sys.exit(code)
