"""A stand-in for a real program (memcached, redis-server, celery, pg_ctl…), read from its argv the
way the real one would: copied under the real program's name into a test's bin/ directory.

- The daemon's id is :func:`standin_id` of its argv (name and arguments) and ``$STANDIN_TAG``, so
  a test can tell the copies of one declared command from the others.
- It writes its pidfile where the real program would: the first argument ending in ``.pid``
  (alone, or after ``=`` as in ``--pidfile=x.pid``).
- It daemonizes (double fork, new session) when the real program would: ``-d``, ``--daemon``,
  ``--daemonize`` (not followed by ``no``), ``--detach``, ``daemonize=yes``, or as ``pg_ctl`` and
  ``celery multi`` do.
- It records ``START``, ``SIGNAL n`` and ``STOP`` in ``$STANDIN_EVENTS`` (the probe daemons'
  format: "<monotonic ns> <ID> <what> <pid>") and exits on SIGTERM/SIGINT/SIGQUIT.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time

DAEMONIZE_FLAGS = {"-d", "--daemon", "--daemonize", "--detach", "daemonize=yes", "--daemonize=yes"}


def standin_id(argv: list[str] | tuple[str, ...], tag: str = "") -> str:
    """The id a stand-in run as ``argv`` records under: ``$STANDIN_TAG`` (told apart two lines
    running one command), the program's basename, a digest of the whole argv."""
    words = [os.path.basename(argv[0]), *argv[1:]]
    digest = hashlib.sha1(" ".join(words).encode()).hexdigest()[:8]
    return f"{tag}{os.path.basename(argv[0])}-{digest}"


def pidfile_of(args: list[str]) -> str | None:
    for arg in args:
        value = arg.rsplit("=", 1)[-1]
        if value.endswith(".pid"):
            return value
    return None


def daemonizes(argv: list[str]) -> bool:
    args = argv[1:]
    for i, arg in enumerate(args):
        if arg in DAEMONIZE_FLAGS and not (i + 1 < len(args) and args[i + 1] == "no"):
            return True
    name = os.path.basename(argv[0])
    return name == "pg_ctl" or (len(args) > 0 and "multi" in args[:2])


def record(what: str, ident: str) -> None:
    events = os.environ.get("STANDIN_EVENTS")
    if not events:
        return
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.monotonic_ns()} {ident} {what} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    ident = standin_id(argv, os.environ.get("STANDIN_TAG", ""))
    if daemonizes(argv):
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
    pidfile = pidfile_of(argv[1:])
    record("START", ident)
    if pidfile is not None:
        try:
            with open(pidfile + ".tmp", "w") as f:
                f.write(f"{os.getpid()}\n")
            os.rename(pidfile + ".tmp", pidfile)
        except OSError as exc:
            sys.stderr.write(f"stand-in {ident}: cannot write pidfile {pidfile}: {exc}\n")

    def on_stop(signum: int, _frame: object) -> None:
        record(f"SIGNAL {signum}", ident)
        record("STOP", ident)
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, on_stop)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda s, _f: record(f"SIGNAL {s}", ident))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main([os.path.basename(sys.argv[0]), *sys.argv[1:]]))
