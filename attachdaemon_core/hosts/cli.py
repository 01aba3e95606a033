"""The ``attachdaemon`` console script (``python -m attachdaemon_core``) for TOML declarations."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from attachdaemon_core.hosts import runtime
from attachdaemon_core.hosts.commands import Context, main_for

DEFAULT_CONFIG = "attachdaemon.toml"


def _configure(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """The global options; accepted before and after the verb (see commands.main_for)."""
    default = os.environ.get("ATTACHDAEMON_CONFIG", DEFAULT_CONFIG) if with_defaults else argparse.SUPPRESS
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        help=f"TOML file with [daemons.NAME] tables (default: $ATTACHDAEMON_CONFIG or ./{DEFAULT_CONFIG})",
    )


def _context(args: argparse.Namespace) -> Context:
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.config_file import load_toml, read_runtime_dir

    path = os.path.abspath(args.config)
    override = read_runtime_dir(path)

    def load() -> tuple:  # type: ignore[type-arg]
        return load_toml(path).specs

    wait = 0.0
    if args.verb == "run":  # ATTACH_DAEMONS_WAIT_READY in the environment: commands.run
        wait = load_toml(path).wait_ready if os.path.exists(path) else 0.0
    return Context(
        runtime_dir=runtime.runtime_dir_for(path, override=override),
        load=load,
        source=path,
        warnings=check_specs,
        wait_ready=wait,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return main_for("attachdaemon", sys.argv[1:] if argv is None else argv, _context, _configure)
