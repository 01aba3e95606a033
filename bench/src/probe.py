"""Fallback probe when no C compiler is available (same modes as probe.c; slower to start)."""

import os
import sys
import time


def announce(fifo, tag):
    line = f"{tag} {os.getpid()} {time.monotonic_ns()}\n".encode()
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def main(argv):
    fifo, tag = argv[1], argv[2]
    mode = argv[3] if len(argv) > 3 else "idle"
    if mode == "smart":
        if os.fork():
            os._exit(0)
        os.setsid()
        tmp = f"{argv[4]}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, argv[4])
    announce(fifo, tag)
    if mode == "crash":
        os._exit(3)
    if mode == "once":
        os._exit(0)
    import signal

    while True:
        signal.pause()


main(sys.argv)
