"""The ``attachdaemon`` console script (``python -m attachdaemon_core``) for TOML declarations or
a Procfile (told apart by the file's name: docs/procfile.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from attachdaemon_core.hosts import runtime
from attachdaemon_core.hosts.commands import Context, main_for
from attachdaemon_core.spec.procfile import is_procfile

DEFAULT_CONFIG = "attachdaemon.toml"


def _configure(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """The global options; accepted before and after the verb (see commands.main_for)."""
    default = os.environ.get("ATTACHDAEMON_CONFIG", DEFAULT_CONFIG) if with_defaults else argparse.SUPPRESS
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        help=(
            "TOML file with [daemons.NAME] tables, or a Procfile"
            f" (default: $ATTACHDAEMON_CONFIG or ./{DEFAULT_CONFIG})"
        ),
    )


def _context(args: argparse.Namespace) -> Context:
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.config_file import load_toml, read_runtime_dir

    path = os.path.abspath(args.config)
    if is_procfile(path):
        return _procfile_context(path)
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


def _procfile_context(path: str) -> Context:
    """A Procfile (docs/procfile.md): its lines run in its directory; the runtime directory is
    derived from the file, as for a TOML file."""
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.declarations import parse_declarations

    def load() -> tuple:  # type: ignore[type-arg]
        return parse_declarations(path, base_dir=os.path.dirname(path), source=path)

    return Context(runtime_dir=runtime.runtime_dir_for(path), load=load, source=path, warnings=check_specs)


def main(argv: Sequence[str] | None = None) -> int:
    return main_for("attachdaemon", sys.argv[1:] if argv is None else argv, _context, _configure)
