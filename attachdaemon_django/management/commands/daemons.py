"""``manage.py daemons status|start|stop|restart|logs|check|run``: the verbs of the attachdaemon CLI.

``status`` exits 0 (healthy), 3 (not) or 4 (no supervisor), and works even when other system
checks fail (no checks are run first). Django's own options (``--settings``, ``-v``,
``--traceback``…) are accepted after the verb as well as before it.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from attachdaemon_core.hosts import commands
from attachdaemon_core.spec.checks import check_specs

from ... import conf


class _Stream(io.TextIOBase):
    """Django's OutputWrapper adds a newline to each write; the verbs write whole text."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, s: str) -> int:
        self.wrapper.write(s, ending="")
        return len(s)

    def flush(self) -> None:
        self.wrapper.flush()


def _django_options() -> argparse.ArgumentParser:
    """Django's base options of every command, again for the verbs' parsers, each without a
    default (SUPPRESS): given after the verb they apply, and a value given before it is kept.
    ``--settings`` and ``--pythonpath`` are applied by Django wherever they stand; accepting
    them here keeps argparse from refusing them."""
    options = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    options.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], help="Verbosity level.")
    options.add_argument("--settings", help="The Python path to a settings module.")
    options.add_argument("--pythonpath", help="A directory to add to the Python path.")
    options.add_argument("--traceback", action="store_true", help="Display a full stack trace.")
    options.add_argument("--no-color", action="store_true", help="Don't colorize the command output.")
    options.add_argument("--force-color", action="store_true", help="Force colorization of the output.")
    return options


class Command(BaseCommand):
    help = "Show and control the daemons declared in ATTACH_DAEMONS."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        commands.add_verbs(parser, _django_options())

    def handle(self, *args: Any, **options: Any) -> None:
        ctx = commands.Context(
            runtime_dir=conf.runtime_dir(),
            load=conf.specs,
            source=conf.SOURCE,
            warnings=check_specs,
            wait_ready=conf.get().wait_ready,
        )
        out, err = cast(TextIO, _Stream(self.stdout)), cast(TextIO, _Stream(self.stderr))
        code = commands.dispatch(argparse.Namespace(**options), ctx, out, err)
        if code:
            sys.exit(code)
