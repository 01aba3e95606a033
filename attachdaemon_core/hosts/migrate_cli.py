"""``attachdaemon migrate uwsgi.ini [--format toml|django|flask] [-o DIR]`` (docs/migrate.md).

Prints the three parts (gunicorn.conf.py, the daemons file, MIGRATION.md), each under a
``# ==> NAME <==`` line, or writes them into DIR (never over an existing file without
``--force``). A command of the ``attachdaemon`` script only: it reads a file and talks to no
supervisor, so it is not in the verb table (control/verbs.py) that ``manage.py daemons`` and
``flask daemons`` share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from attachdaemon_core.hosts.exits import EXIT_BAD, EXIT_OK
from attachdaemon_core.spec.migrate import FORMATS, migrate
from attachdaemon_core.spec.migrate_daemons import RoundTripError
from attachdaemon_core.spec.model import ConfigError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attachdaemon migrate",
        description="translate a uWSGI config file into gunicorn.conf.py, the daemons file and MIGRATION.md",
    )
    parser.add_argument("file", metavar="uwsgi.ini", help="uwsgi.ini[:section], .yaml, .yml or .json")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="toml",
        help="the daemons as a TOML file (default), or ATTACH_DAEMONS for Django settings or a Flask config",
    )
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="write the three files into DIR instead of printing"
    )
    parser.add_argument("--force", action="store_true", help="with -o: replace files that exist")
    return parser


def main(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parser().parse_args(list(argv))
    try:
        result = migrate(args.file, os.getcwd(), args.format)
    except ConfigError as exc:
        err.write(f"{exc}\nfix these lines (or leave them out of the file) and run migrate again\n")
        return EXIT_BAD
    except RoundTripError as exc:
        err.write(f"attachdaemon migrate: the declarations written do not read back the same: {exc}\n")
        return EXIT_BAD
    if args.output is None:
        for name, text in result.files.items():
            out.write(f"# ==> {name} <==\n{text}\n")
        return EXIT_OK
    return _write(result.files, args.output, args.force, out, err)


def _write(files: dict[str, str], folder: str, force: bool, out: TextIO, err: TextIO) -> int:
    existing = [name for name in files if os.path.exists(os.path.join(folder, name))]
    if existing and not force:
        err.write(
            f"attachdaemon migrate: {', '.join(existing)} already in {folder} (add --force to replace)\n"
        )
        return EXIT_BAD
    try:
        os.makedirs(folder, exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as exc:
        err.write(f"attachdaemon migrate: cannot write into {folder}: {exc.strerror}\n")
        return EXIT_BAD
    out.write(f"wrote {', '.join(os.path.join(folder, name) for name in files)}\n")
    out.write(f"start the server with: gunicorn -c {os.path.join(folder, 'gunicorn.conf.py')}\n")
    return EXIT_OK
