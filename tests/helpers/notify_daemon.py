"""A daemon for tests that speaks the sd_notify protocol (systemd's sd_notify(3)) by hand, or
prints lines, or grows its memory, as the test tells it through files in a directory.

usage: notify_daemon.py DIR [--pings N] [--every S] [--print TEXT] [--alloc-mib N]
  DIR/send-*      each file's content is sent as one datagram to $NOTIFY_SOCKET, in name order,
                  then the file is removed
  DIR/print-*     each file's content is printed on stdout (one line), then removed
  DIR/alloc       when it appears: allocate and touch --alloc-mib MiB, kept until exit
  --pings N       after READY=1 was sent, send WATCHDOG=1 every --every seconds, N times, then stop
  --print TEXT    printed once at start
It writes DIR/pid-<pid> at start, so a test knows every run.
"""

from __future__ import annotations

import os
import socket
import sys
import time


def send(data: bytes) -> None:
    path = os.environ["NOTIFY_SOCKET"]
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, address)


def main(argv: list[str]) -> int:
    directory, *opts = argv
    options = dict(zip(opts[::2], opts[1::2], strict=True))
    pings = int(options.get("--pings", "0"))
    every = float(options.get("--every", "0.2"))
    alloc_mib = int(options.get("--alloc-mib", "0"))
    if "--print" in options:
        print(options["--print"], flush=True)
    open(os.path.join(directory, f"pid-{os.getpid()}"), "w").close()
    held: list[bytearray] = []
    ready = False
    next_ping = 0.0
    while True:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.startswith("send-"):
                with open(path, "rb") as f:
                    data = f.read()
                os.unlink(path)
                send(data)
                ready = ready or b"READY=1" in data
            elif name.startswith("print-"):
                with open(path) as f:
                    print(f.read().strip(), flush=True)
                os.unlink(path)
            elif name == "alloc" and alloc_mib and not held:
                held.append(bytearray(b"\x01") * (alloc_mib * 1024 * 1024))  # every page touched
        if ready and pings > 0 and time.monotonic() >= next_ping:
            send(b"WATCHDOG=1")
            pings -= 1
            next_ping = time.monotonic() + every
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
