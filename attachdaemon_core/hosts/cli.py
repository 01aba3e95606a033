"""The ``attachdaemon`` console script (``python -m attachdaemon_core``) for a TOML file of
declarations, a uWSGI config file (``uwsgi.ini[:section]``, ``.yaml``, ``.yml``, ``.json``;
docs/uwsgi-files.md) or a Procfile (docs/procfile.md), told apart by the file's name;
``attachdaemon migrate uwsgi.ini`` translates a uWSGI file for gunicorn (docs/migrate.md).

Imports stay inside the functions: ``status`` (the command scripts and probes call often) is
answered with the control client alone, and ``run`` loads what it needs once it needs it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (about 2 ms): mypy reads it alike
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from attachdaemon_core.hosts.commands import Context

DEFAULT_CONFIG = "attachdaemon.toml"


def _configure(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """The global options; accepted before and after the verb (see commands.main_for)."""
    import argparse

    default = os.environ.get("ATTACHDAEMON_CONFIG", DEFAULT_CONFIG) if with_defaults else argparse.SUPPRESS
    if with_defaults:  # the main parser: migrate is this script's own command (see main)
        parser.epilog = "also: attachdaemon migrate uwsgi.ini [-o DIR], a uWSGI file for gunicorn"
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        help=(
            "TOML file with [daemons.NAME] tables, a uWSGI config file (uwsgi.ini[:section], .yaml, .json)"
            " or a Procfile"
            f" (default: $ATTACHDAEMON_CONFIG or ./{DEFAULT_CONFIG})"
        ),
    )


def _runtime_dir(config: str) -> str:
    """The runtime directory for the file ``config`` (docs/process-model.md)."""
    if os.environ.get("ATTACH_DAEMONS_RUNTIME_DIR"):  # it wins over the file: no need to read it
        return os.path.abspath(os.environ["ATTACH_DAEMONS_RUNTIME_DIR"])
    from attachdaemon_core.hosts import runtime

    path = os.path.abspath(config)
    if _is_uwsgi_file(path) or _is_procfile(path):  # derived from the file (and section)
        return runtime.runtime_dir_for(path)
    from attachdaemon_core.spec.config_file import read_runtime_dir

    return runtime.runtime_dir_for(path, override=read_runtime_dir(path))


def _is_uwsgi_file(path: str) -> bool:
    if path.endswith(".toml"):  # the common case, without importing the uWSGI reader
        return False
    from attachdaemon_core.spec.uwsgi_file import is_uwsgi_file

    return is_uwsgi_file(path)


def _is_procfile(path: str) -> bool:
    if path.endswith(".toml"):  # the common case, without importing the Procfile reader
        return False
    from attachdaemon_core.spec.procfile import is_procfile

    return is_procfile(path)


def _context(args: argparse.Namespace) -> Context:
    from attachdaemon_core.hosts.commands import Context
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.config_file import FileConfig, load_toml

    path = os.path.abspath(args.config)
    if _is_procfile(path):
        return _procfile_context(path)
    if _is_uwsgi_file(path):
        return _uwsgi_context(path)
    read_first: list[FileConfig] = []  # ``run``: the file as read for wait_ready serves the first load too

    def load() -> tuple:  # type: ignore[type-arg]
        return read_first.pop().specs if read_first else load_toml(path).specs

    wait = 0.0
    if args.verb == "run" and os.path.exists(path):  # ATTACH_DAEMONS_WAIT_READY: commands.run
        read_first.append(load_toml(path))
        wait = read_first[0].wait_ready
    return Context(
        runtime_dir=_runtime_dir(args.config),
        load=load,
        source=path,
        warnings=check_specs,
        wait_ready=wait,
    )


def _procfile_context(path: str) -> Context:
    """A Procfile (docs/procfile.md): its lines run in its directory; the runtime directory is
    derived from the file, as for a TOML file."""
    from attachdaemon_core.hosts.commands import Context
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.declarations import parse_declarations

    def load() -> tuple:  # type: ignore[type-arg]
        return parse_declarations(path, base_dir=os.path.dirname(path), source=path)

    return Context(runtime_dir=_runtime_dir(path), load=load, source=path, warnings=check_specs)


def _uwsgi_context(spec: str) -> Context:
    """A uWSGI file: its relative paths start where uWSGI would run, the current directory (or
    its ``chdir``); the runtime directory is derived from the file and section."""
    from attachdaemon_core.hosts.commands import Context
    from attachdaemon_core.spec.checks import check_specs
    from attachdaemon_core.spec.declarations import parse_declarations

    base = os.getcwd()

    def load() -> tuple:  # type: ignore[type-arg]
        return parse_declarations(spec, base_dir=base, source=spec)

    return Context(runtime_dir=_runtime_dir(spec), load=load, source=spec, warnings=check_specs)


def _plain_status(argv: list[str]) -> int | None:
    """``[-c FILE] status [--json]``, the exact spellings, answered without the argument parser
    or the declarations' code (about 40 ms less per call); None for any other command line,
    which the full parser handles with the same result."""
    config = os.environ.get("ATTACHDAEMON_CONFIG", DEFAULT_CONFIG)
    rest = argv
    if len(rest) >= 2 and rest[0] in ("-c", "--config") and not rest[1].startswith("-"):
        config, rest = rest[1], rest[2:]
    if rest not in (["status"], ["status", "--json"]):
        return None
    from attachdaemon_core.hosts import status

    return status.command(_runtime_dir(config), sys.stdout, sys.stderr, as_json=len(rest) == 2)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["migrate"]:  # a command of this script only, reading a file (docs/migrate.md)
        from attachdaemon_core.hosts.migrate_cli import main as migrate_main

        return migrate_main(args[1:])
    answered = _plain_status(args)
    if answered is not None:
        return answered
    from attachdaemon_core.hosts.commands import main_for

    return main_for("attachdaemon", args, _context, _configure)
