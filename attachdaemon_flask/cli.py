"""``flask daemons status|start|stop|restart|logs|check|run``: the verbs of the attachdaemon CLI."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from attachdaemon_core import commands
from attachdaemon_core.declarations import check_specs

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


@daemons.command("status")
@click.option("--json", "as_json", is_flag=True, help="the stable JSON of docs/status-json.md")
def status(as_json: bool) -> None:
    """Show the daemons (exit 0 healthy, 3 not, 4 no supervisor)."""
    _dispatch("status", json=as_json)


def _names_command(verb: str) -> None:
    @daemons.command(verb, help=f"{verb.capitalize()} daemons by name.")
    @click.argument("names", nargs=-1)
    @click.option("--all", "all_", is_flag=True)
    def command(names: tuple[str, ...], all_: bool) -> None:
        _dispatch(verb, names=list(names), all=all_)


for _verb in ("start", "stop", "restart"):
    _names_command(_verb)


@daemons.command("logs")
@click.argument("name")
@click.option("-n", "--lines", type=int, default=50)
@click.option("-f", "--follow", is_flag=True)
def logs(name: str, lines: int, follow: bool) -> None:
    """Show a daemon's last output lines."""
    _dispatch("logs", name=name, lines=lines, follow=follow)


@daemons.command("check")
def check() -> None:
    """Validate the declarations; no supervisor needed."""
    _dispatch("check")


@daemons.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(command: tuple[str, ...]) -> None:
    """Own the supervisor in the foreground [-- CMD…]."""
    _dispatch("run", command=list(command))
