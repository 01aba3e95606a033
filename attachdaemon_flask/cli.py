"""``flask daemons status|start|stop|restart|logs|check|run``: the verbs of the attachdaemon CLI.

The click commands are built from the verb registry (:mod:`attachdaemon_core.control.verbs`),
the table the ``attachdaemon`` and ``manage.py daemons`` commands are built from too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from attachdaemon_core.control.verbs import CLI_VERBS, VERBS, Arg
from attachdaemon_core.hosts import commands
from attachdaemon_core.spec.checks import check_specs

from .extension import read_state, state_of

daemons = AppGroup("daemons", help="Show and control the daemons of ATTACH_DAEMONS.")


def _dispatch(verb: str, **args: Any) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = state_of(app)
    ctx = commands.Context(
        runtime_dir=state.runtime_dir,
        load=lambda: read_state(app).declared.specs,
        source=state.declared.source,
        warnings=check_specs,
        wait_ready=state.declared.wait_ready,
    )
    code = commands.dispatch(argparse.Namespace(verb=verb, **args), ctx, sys.stdout, sys.stderr)
    if code:
        sys.exit(code)


def _param(arg: Arg) -> click.Parameter:
    if arg.type is bool:
        return click.Option([*arg.flags, arg.name], is_flag=True, help=arg.help)
    if arg.flags:
        return click.Option(
            [*arg.flags, arg.name], type=arg.type, default=arg.default, metavar=arg.metavar, help=arg.help
        )
    if arg.nargs is None:
        return click.Argument([arg.name], metavar=arg.metavar)
    # NAME… or -- CMD…: any number, passed through as they are
    return click.Argument([arg.name], nargs=-1, type=click.UNPROCESSED, metavar=arg.metavar)


def _command(name: str) -> click.Command:
    verb = VERBS[name]
    help_text = (verb.help or "").rstrip(".")
    params = [_param(a) for a in verb.args if a.cli]

    def callback(**values: Any) -> None:
        _dispatch(name, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})

    remainder = any(a.nargs == argparse.REMAINDER for a in verb.args)
    return click.Command(
        name,
        callback=with_appcontext(callback),  # as AppGroup.command does
        params=params,
        help=help_text[:1].upper() + help_text[1:] + ".",
        context_settings={"ignore_unknown_options": True} if remainder else None,
    )


for _name in CLI_VERBS:
    daemons.add_command(_command(_name))
