"""A small daemon for tests: records its life to an events file and behaves as told.

usage: probe_daemon.py EVENTS NAME [options]
  --pidfile P         write P (foreground) with our pid
  --daemonize P       double-fork, then the grandchild writes P
  --pidfile-may-fail  if P cannot be written, go on without it (as redis does after daemonizing)
  --ignore-term       ignore SIGTERM (and SIGINT)
  --exit-after S      exit after S seconds with --code
  --code N            exit status (default 0)
  --grandchild        start a grandchild `sleep` in our session that outlives us if not killed
  --port N            listen on 127.0.0.1:N after --ready-delay seconds
  --ready-delay S
  --reexec P          on SIGUSR2: fork a new copy that rewrites pidfile P, then exit (hot upgrade)
Each event line: "<monotonic ns> <NAME> <START|STOP|SIGNAL n> <pid>".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time


def record(events: str, name: str, what: str) -> None:
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.monotonic_ns()} {name} {what} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    events, name, *opts = argv
    opt = {}
    flags = set()
    it = iter(opts)
    for a in it:
        if a in ("--ignore-term", "--grandchild", "--pidfile-may-fail"):
            flags.add(a)
        else:
            opt[a] = next(it)
    if "--daemonize" in opt:
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        try:
            with open(opt["--daemonize"] + ".tmp", "w") as f:
                f.write(f"{os.getpid()}\n")
            os.rename(opt["--daemonize"] + ".tmp", opt["--daemonize"])
        except OSError:
            if "--pidfile-may-fail" not in flags:
                raise
    record(events, name, "START")
    if "--pidfile" in opt:
        with open(opt["--pidfile"] + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(opt["--pidfile"] + ".tmp", opt["--pidfile"])

    def on_term(signum: int, _frame: object) -> None:
        record(events, name, f"SIGNAL {signum}")
        if "--ignore-term" in flags:
            return
        record(events, name, "STOP")
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(
            sig,
            on_term
            if sig != signal.SIGHUP and sig != signal.SIGUSR1
            else (lambda s, f: record(events, name, f"SIGNAL {s}")),
        )
    if "--reexec" in opt:

        def on_usr2(signum: int, _frame: object) -> None:
            # Like nginx/unicorn: the new copy writes the pidfile, then the old one exits.
            pidfile = opt["--reexec"]
            pid = os.fork()
            if pid == 0:
                os.execv(sys.executable, [sys.executable, __file__, events, name, "--pidfile", pidfile])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    with open(pidfile) as f:
                        if f.read().strip() == str(pid):
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            os._exit(0)

        signal.signal(signal.SIGUSR2, on_usr2)
    if "--grandchild" in flags:
        subprocess.Popen(["sleep", "1000"], start_new_session=False)
    if "--port" in opt:
        time.sleep(float(opt.get("--ready-delay", "0")))
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(opt["--port"])))
        srv.listen(16)
        record(events, name, "LISTEN")
    if "--exit-after" in opt:
        time.sleep(float(opt["--exit-after"]))
        record(events, name, f"EXIT {opt.get('--code', '0')}")
        return int(opt.get("--code", "0"))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
