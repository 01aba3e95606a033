"""Every verb in one table: its name, whether it only reads, its typed arguments and its CLI help.

The protocol checks incoming requests against it (:func:`check_args`), the control server takes
its read-only set from it, the supervisor dispatches through it (``ControlAnswers.verb_<name>``
in engine/verbs.py), and every command line (``attachdaemon``, ``manage.py daemons``,
``flask daemons``) builds its subcommands and help from it (:func:`add_cli_verbs`).

Some verbs are only sent by hosts (``reload``, ``add-owner``…: no ``help``, no subcommand);
some are only commands (``check``, ``run``: ``control=False``, never sent to a supervisor).
An argument with ``wire=False`` is the command's own (``status --json``), never sent.
"""

from __future__ import annotations

import argparse
import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLI_VERBS",
    "CONTROL_VERBS",
    "READ_ONLY_VERBS",
    "VERBS",
    "Arg",
    "BadArguments",
    "Verb",
    "add_cli_verbs",
    "check_args",
]

_TYPE_NAMES = {bool: "true or false", int: "an integer", str: "a string", list: "a list", dict: "an object"}


@dataclass(frozen=True)
class Arg:
    """One argument: its JSON type on the wire, and how a command line spells it."""

    name: str
    type: type
    required: bool = False
    default: Any = None
    help: str | None = None
    flags: tuple[str, ...] = ()  # the command line's option strings; () = positional
    metavar: str | None = None
    nargs: str | None = None  # argparse's: "*" (names), argparse.REMAINDER (run -- CMD)
    item: builtins.type | None = None  # a list's element type
    wire: bool = True  # sent to the supervisor; False: the command's own option
    cli: bool = True  # offered on the command line

    def bad(self, value: object) -> str | None:
        """Why ``value`` is not of this argument's type, or None. JSON null is the default."""
        if value is None and not self.required:
            return None
        ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if ok and self.item is not None and isinstance(value, list):
            ok = all(isinstance(v, self.item) for v in value)
        if ok:
            return None
        what = _TYPE_NAMES.get(self.type, self.type.__name__)
        shown = _json_type(value)
        if self.item is not None:
            what += f" of {_TYPE_NAMES.get(self.item, self.item.__name__).removeprefix('a ')}s"
            odd = [v for v in value if not isinstance(v, self.item)] if isinstance(value, list) else []
            shown += f" holding {_json_type(odd[0])}" if odd else ""
        return f"argument {self.name!r} must be {what}, not {shown}"


@dataclass(frozen=True)
class Verb:
    name: str
    read_only: bool = False
    args: tuple[Arg, ...] = ()
    help: str | None = None  # the command line's help; None: not a command, only hosts send it
    control: bool = True  # answered by the supervisor; False: the command does it all itself

    @property
    def method(self) -> str:
        """The ``ControlAnswers`` method that answers it (engine/verbs.py)."""
        return "verb_" + self.name.replace("-", "_")

    @property
    def wire_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.wire)


_JSON_HELP = "the stable JSON of docs/status-json.md"
_NAMES = Arg("names", list, item=str, metavar="NAME", nargs="*", help="the daemons' names")
_ALL = Arg("all", bool, default=False, flags=("--all",), help="every declared daemon")
_OWNER = Arg("owner", dict, required=True, cli=False)
_DECLARATIONS = Arg("declarations", dict, required=True, cli=False)

VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("ping", read_only=True),
        Verb(
            "status",
            read_only=True,
            args=(
                Arg(
                    "json", bool, flags=("--json",), wire=False, help="the stable JSON of docs/status-json.md"
                ),
            ),
            help="show the daemons (exit 0 healthy, 3 not, 4 no supervisor)",
        ),
        Verb(
            "logs",
            read_only=True,
            args=(
                Arg("name", str, required=True, metavar="NAME", help="the daemon's name"),
                Arg("lines", int, default=50, flags=("-n", "--lines"), help="how many (default: 50)"),
                Arg("since", int, cli=False),  # the sequence number of the last line seen (--follow)
                Arg("follow", bool, flags=("-f", "--follow"), wire=False, help="then print new lines"),
            ),
            help="show a daemon's last output lines",
        ),
        Verb(
            "events",
            read_only=True,
            args=(
                Arg(
                    "after",
                    int,
                    default=0,
                    flags=("--after",),
                    metavar="N",
                    help="only the events after sequence number N (a client coming back)",
                ),
                Arg("follow", bool, flags=("-f", "--follow"), help="then print each new event as it happens"),
                Arg("json", bool, flags=("--json",), wire=False, help="one JSON object per line"),
            ),
            help="show what happened to the daemons, in order (docs/monitoring.md)",
        ),
        Verb(
            "metrics",
            read_only=True,
            help="print the Prometheus metrics (needs the [metrics] extra)",
        ),
        Verb("start", args=(_NAMES, _ALL), help="start daemons by name"),
        Verb("stop", args=(_NAMES, _ALL), help="stop daemons by name"),
        Verb("restart", args=(_NAMES, _ALL), help="restart daemons by name"),
        Verb("signal", args=(_NAMES, _ALL, Arg("signal", int, required=True))),
        Verb("reload", args=(_OWNER, _DECLARATIONS, Arg("policies", bool, default=True, cli=False))),
        Verb("add-owner", args=(_OWNER, _DECLARATIONS)),
        Verb("remove-owner", args=(_OWNER,)),
        Verb("shutdown"),
        Verb("check", control=False, help="validate the declarations; no supervisor needed"),
        Verb(
            "run",
            control=False,
            args=(Arg("command", list, item=str, metavar="-- CMD", nargs=argparse.REMAINDER),),
            help="own the supervisor in the foreground [-- CMD…]",
        ),
    )
}

CONTROL_VERBS = frozenset(v.name for v in VERBS.values() if v.control)
# Verbs that only read; answered for the daemons' default user too (docs/process-model.md).
READ_ONLY_VERBS = frozenset(v.name for v in VERBS.values() if v.control and v.read_only)
CLI_VERBS = tuple(v.name for v in VERBS.values() if v.help is not None)


class BadArguments(ValueError):
    """A request whose arguments do not match the verb; the message says which and why."""


def check_args(verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of a request for ``verb``, checked against the table, defaults filled in.

    Unknown arguments are left out (a newer host may send one an older supervisor does not
    know); a missing required one, or one of the wrong JSON type, raises BadArguments."""
    spec = VERBS[verb]
    out: dict[str, Any] = {}
    for arg in spec.wire_args:
        value = args.get(arg.name)
        if value is None and arg.required:
            raise BadArguments(f"{verb}: argument {arg.name!r} is required")
        problem = arg.bad(value)
        if problem:
            raise BadArguments(f"{verb}: {problem}")
        out[arg.name] = arg.default if value is None else value
    return out


def add_cli_verbs(parser: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    """The command-line verbs as subcommands of ``parser`` (``dest="verb"``), help included."""
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in CLI_VERBS:
        verb = VERBS[name]
        p = sub.add_parser(name, help=verb.help, description=verb.help, parents=parents)
        for arg in verb.args:
            if arg.cli:
                _add_cli_arg(p, arg)


def _add_cli_arg(p: argparse.ArgumentParser, arg: Arg) -> None:
    if arg.type is bool:
        p.add_argument(*arg.flags, dest=arg.name, action="store_true", help=arg.help)
    elif arg.flags:
        p.add_argument(
            *arg.flags, dest=arg.name, type=arg.type, default=arg.default, metavar=arg.metavar, help=arg.help
        )
    else:
        p.add_argument(arg.name, nargs=arg.nargs, metavar=arg.metavar, help=arg.help)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )
