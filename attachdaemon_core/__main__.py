"""``python -m attachdaemon_core``: the CLI, plus the internal ``guard`` and ``supervise`` entries."""

from __future__ import annotations

import sys


def _internal(argv: list[str]) -> int:
    """``guard --runtime-dir D`` / ``supervise --runtime-dir D [--guard-fd N] [--respawns N]``.

    Parsed by hand: argparse would cost the long-lived guard and supervisor memory for nothing.
    """
    role, rest = argv[0], argv[1:]
    opts = dict(zip(rest[::2], rest[1::2], strict=False))
    runtime_dir = opts.get("--runtime-dir")
    if not runtime_dir or len(rest) % 2:
        sys.stderr.write(f"usage: python -m attachdaemon_core {role} --runtime-dir DIR\n")
        return 2
    if role == "guard":
        from attachdaemon_core.engine.guard import main as guard_main

        return guard_main(runtime_dir)
    from attachdaemon_core.engine.supervisor import main as supervise_main

    fd = opts.get("--guard-fd")
    return supervise_main(runtime_dir, int(fd) if fd else None, int(opts.get("--respawns", "0")))


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] in (["guard"], ["supervise"]):
        return _internal(argv)
    from attachdaemon_core.hosts.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
