"""``python -m attachdaemon_core``: the CLI, plus the internal ``guard`` and ``supervise`` entries."""

from __future__ import annotations

import argparse
import sys


def _internal(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m attachdaemon_core")
    parser.add_argument("role", choices=["guard", "supervise"])
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--guard-fd", type=int)
    parser.add_argument("--respawns", type=int, default=0)
    args = parser.parse_args(argv)
    if args.role == "guard":
        from .guard import main as guard_main

        return guard_main(args.runtime_dir)
    from .supervisor import main as supervise_main

    return supervise_main(args.runtime_dir, args.guard_fd, args.respawns)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] in (["guard"], ["supervise"]):
        return _internal(argv)
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
