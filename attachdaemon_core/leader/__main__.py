"""``python -m attachdaemon_core.leader hold …`` (the lock holder) and ``… watchdog --fd N``.

The backend string may hold a password, so it should not be on the command line (``ps`` shows
argv to everyone): pass it in the environment variable ``ATTACHDAEMON_INTERNAL_LEADER_BACKEND``
(readable only by the same user; removed from the holder's environment at once, so neither
the watchdog nor anything else inherits it). ``--backend`` is accepted for ``file`` and URLs
without a password (tests, debugging).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any

BACKEND_ENV = "ATTACHDAEMON_INTERNAL_LEADER_BACKEND"
EXIT_USAGE = 2


def _emit_error(reason: str) -> None:
    sys.stdout.write(json.dumps({"event": "error", "reason": reason}) + "\n")
    sys.stdout.flush()


def _fatal(reason: str) -> int:
    """Say why the holder cannot run (as an event, and on stderr, which the supervisor reports
    with the holder's exit status), and exit."""
    _emit_error(reason)
    sys.stderr.write(f"attachdaemon lock holder: {reason}\n")
    sys.stderr.flush()
    return EXIT_USAGE


def _hold(args: argparse.Namespace) -> int:
    from attachdaemon_core.leader.backends import open_lock
    from attachdaemon_core.leader.base import BackendUnavailable
    from attachdaemon_core.leader.holder import Holder, Params
    from attachdaemon_core.leader.rules import backend_kind, check_arithmetic, missing_client
    from attachdaemon_core.spec.redaction import redact

    backend = os.environ.pop(BACKEND_ENV, None) or args.backend or "file"
    try:
        info = json.loads(args.info) if args.info else {}
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return _fatal("--info must be a JSON object")
    info.setdefault("host", socket.gethostname())
    info.setdefault("pid", os.getppid())
    params = Params(
        name=args.name,
        backend=backend,
        lease=args.lease,
        renew=args.renew,
        stop_timeout=args.stop_timeout,
        margin=args.margin,
        info=info,
    )
    problem = check_arithmetic(params.lease, params.renew, params.stop_timeout, params.margin)
    if problem:
        return _fatal(f"unsafe leader timing: {problem}")
    try:
        lock: Any = open_lock(params.name, backend, lease=params.lease, renew=params.renew, holder_info=info)
    except (ValueError, BackendUnavailable) as exc:
        return _fatal(redact(str(exc), backend))
    except ImportError as exc:
        message, install = missing_client(backend_kind(backend), exc)
        return _fatal(redact(f"{message}; {install}", backend))
    return Holder(params, lock).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attachdaemon_core.leader")
    sub = parser.add_subparsers(dest="command", required=True)
    hold = sub.add_parser("hold", help="hold a leader lock; JSON lines on stdin/stdout")
    hold.add_argument("--name", required=True)
    hold.add_argument("--backend", default=None, help=f"prefer ${BACKEND_ENV} (may hold a password)")
    hold.add_argument("--lease", type=float, default=15.0)
    hold.add_argument("--renew", type=float, default=3.0)
    hold.add_argument("--stop-timeout", type=float, default=4.0)
    hold.add_argument("--margin", type=float, default=1.0)
    hold.add_argument("--info", default="{}", help="JSON object shown as the holder's info")
    wd = sub.add_parser("watchdog", help="internal: the holder's watchdog")
    wd.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "watchdog":
        from attachdaemon_core.leader.watchdog import main as watchdog_main

        return watchdog_main(args.fd)
    return _hold(args)


if __name__ == "__main__":
    sys.exit(main())
