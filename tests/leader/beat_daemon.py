"""A leader daemon for the tests: logs ``LABEL start|beat|stop MONOTONIC`` every 5 ms.

Its running interval is [first line, last line] on the host's monotonic clock; two daemons of
one lock must never have overlapping intervals (research/distributed.md §5 "Oracle").
"""

import os
import signal
import sys
import time

path, label = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def line(what: str) -> None:
    os.write(
        fd,
        f"{label} {what} {time.monotonic():.6f} {os.environ.get('ATTACHDAEMON_LEADER_TOKEN', '')}\n".encode(),
    )


def on_term(signum: int, frame: object) -> None:
    line("stop")
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)
line("start")
while True:
    time.sleep(0.005)
    line("beat")
