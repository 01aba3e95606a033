"""``manage.py daemons status|start|stop|restart|logs|check|run``: the verbs of the attachdaemon CLI.

``status`` exits 0 (healthy), 3 (not) or 4 (no supervisor), and works even when other system
checks fail (no checks are run first).
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from attachdaemon_core import commands
from attachdaemon_core.declarations import check_specs

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


class Command(BaseCommand):
    help = "Show and control the daemons declared in ATTACH_DAEMONS."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        commands.add_verbs(parser)

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
