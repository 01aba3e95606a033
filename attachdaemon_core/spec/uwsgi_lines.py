"""uWSGI daemon option lines turned into native declaration dicts (docs/declarations.md, "uWSGI lines").

``parse_uwsgi_line("smart-attach-daemon = /tmp/mc.pid memcached -d -P /tmp/mc.pid")`` gives
``{"name": "memcached", "pidfile": "/tmp/mc.pid", "command": [...]}``; the dict is then validated
like any other declaration by :func:`attachdaemon_core.spec.declarations.parse_declarations`, which is
the only caller that sees the private ``shell`` key. Runs in whichever process reads settings.

This module reads the option and its value and parses each option of the family; the command is
judged in :mod:`.uwsgi_command`, attach-daemon2's ``key=value`` list in :mod:`.uwsgi_kv`, and the
state they share is in :mod:`.uwsgi_state`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Collection, Sequence

from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import Problem
from attachdaemon_core.spec.uwsgi_command import attach, set_process_name, shell_syntax, show_constructs
from attachdaemon_core.spec.uwsgi_cron import CRON_OPTIONS, HARAKIRI_OPTION, cron_parsers
from attachdaemon_core.spec.uwsgi_kv import parse_kv, split_kvlist
from attachdaemon_core.spec.uwsgi_state import LineError, LineState, digits

__all__ = [
    "OPTIONS",
    "derive_names",
    "parse_uwsgi_line",
    "shell_syntax",
    "show_constructs",
    "split_kvlist",
    "split_option",
]

OPTIONS = (
    "attach-daemon",
    "attach-control-daemon",
    "smart-attach-daemon",
    "smart-attach-daemon2",
    "attach-daemon2",
    "legion-attach-daemon",
    "legion-smart-attach-daemon",
    "legion-smart-attach-daemon2",
    *CRON_OPTIONS,  # jobs (docs/declarations.md, "Jobs"): parsed in uwsgi_cron
    HARAKIRI_OPTION,
)
_ENV_PLACEHOLDER = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_OPTION_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_MAGIC = re.compile(r"%%|%\([^)]*\)?|%[A-Za-z0-9\[]|@\([^)]*\)?")  # matched left to right: "%%h" is "%" "h"
_CONFIG_PLACEHOLDER = re.compile(r"%\([^)]*\)?")


def parse_uwsgi_line(
    line: str, *, leader_backend: str = "file", cron_harakiri: float | None = None
) -> tuple[dict[str, object], list[Problem]]:
    """Parse one uWSGI option line into a native declaration (with ``name``) and its problems.

    The name is derived from the program (``memcached``); it is ``""`` when the line is too broken
    to tell. Problems name the daemon when its name is known, else they quote the line. Problems
    whose code starts with ``W`` are notes on an accepted line (a dropped trailing ``;``, an
    attach-daemon2 key uWSGI ignores), not errors.
    """
    state = LineState(leader_backend, cron_harakiri)
    option = ""
    try:
        option, value = split_option(line)
        # A config file's line went through uWSGI's magic_sub; its command line did not.
        value = expand_placeholders(value, config_file=not line.strip().startswith("--"))
        _PARSERS[option](value, state)
    except LineError as exc:
        state.problem(exc.message, exc.hint)
    name = program_name(state.program) if state.program else ""
    decl = {"name": name, **state.decl}
    if name:
        problems = [Problem(m, daemon=name, key=option, hint=h) for m, h in state.problems]
        problems += [Problem(m, daemon=name, key=option, hint=h, code="W004") for m, h in state.notes]
    else:
        problems = [Problem(f"uWSGI line {line!r}: {m}", hint=h) for m, h in state.problems]
    return decl, problems


def derive_names(base_names: Sequence[str], taken: Collection[str] = ()) -> list[str]:
    """Number repeated names: ``memcached``, ``memcached-2``, … avoiding names in ``taken``.

    An empty base name (a line too broken to name) stays empty.
    """
    used = set(taken)
    result = []
    for base in base_names:
        if not base:
            result.append("")
            continue
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        result.append(name)
    return result


def program_name(program: str) -> str:
    """A daemon name made from a program path: its basename, invalid characters replaced."""
    base = os.path.basename(program.rstrip("/"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.")
    return name or "daemon"


# --- the option and its value --------------------------------------------------------------------


def split_option(line: str) -> tuple[str, str]:
    """Split ``OPTION = VALUE``, ``OPTION: VALUE`` or ``--OPTION VALUE`` into its two parts."""
    text = line.strip()
    if text.startswith("--"):
        rest = text[2:]
        end = next((i for i, c in enumerate(rest) if c == "=" or c.isspace()), len(rest))
        option, value = rest[:end], _unquote(rest[end + 1 :].strip())
    else:
        cut = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
        if cut < 0:
            raise LineError("not a uWSGI option line", hint="write 'attach-daemon = CMD'")
        option, value = text[:cut], text[cut + 1 :]
    option = option.strip().lower().replace("_", "-")
    if not _OPTION_NAME.match(option):
        raise LineError("not a uWSGI option line", hint="write 'attach-daemon = CMD'")
    if option not in OPTIONS:
        raise LineError(f"unknown option {option!r}", hint=did_you_mean(option, OPTIONS))
    value = value.strip()
    if not value:
        raise LineError(f"{option} needs a value")
    return option, value


def _unquote(value: str) -> str:
    """Drop one pair of quotes around a whole ``--option "value"`` copied from a shell."""
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    return value[1:-1] if quoted and value[0] not in value[1:-1] else value


def expand_placeholders(value: str, *, config_file: bool = True) -> str:
    """Expand ``$(NAME)`` from os.environ; refuse uWSGI's ini-only ``%(…)``, ``%d`` and ``@(…)``.

    ``%%`` is a literal ``%`` in a config file, as uWSGI's reader makes it (core/utils.c
    ``magic_sub``); on uWSGI's command line (``config_file=False``) nothing reads it and it stays.
    A ``%(…)`` it leaves (``%%(x)``) is still refused: uWSGI expands it later, on every option.
    """

    def magic(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%" if config_file else "%%"
        raise _placeholder_error(match.group(0))

    value = _MAGIC.sub(magic, value)
    if left := _CONFIG_PLACEHOLDER.search(value):
        raise _placeholder_error(left.group(0))
    unset = [n for n in _ENV_PLACEHOLDER.findall(value) if n not in os.environ]
    if unset:
        names = ", ".join(f"$({n})" for n in dict.fromkeys(unset))
        raise LineError(f"environment variable {names} is not set")
    return _ENV_PLACEHOLDER.sub(lambda m: os.environ[m.group(1)], value)


def _placeholder_error(token: str) -> LineError:
    kind = "file reader" if token.startswith("@") else "placeholder"
    hint = "write the value out, or use $(NAME) for an environment variable"
    return LineError(f"uWSGI {kind} {token!r} is not supported", hint=hint)


# --- the options ---------------------------------------------------------------------------------


def _control(value: str, state: LineState) -> None:
    attach(value, state)
    state.decl["control"] = True


def _smart(value: str, state: LineState) -> None:
    pid_token, cmd = _split_pidfile(value)
    _set_pidfile(pid_token, state)
    attach(cmd, state)
    set_process_name(state)


def _smart2(value: str, state: LineState) -> None:
    _smart(value, state)
    state.decl["daemonize"] = True


def _split_pidfile(value: str) -> tuple[str, str]:
    """Split ``PIDFILE[,FREQ] CMD``; refuse a line whose first word is clearly not a pidfile."""
    first, rest = _first_and_rest(value)
    usage = "write 'PIDFILE CMD' with a space between them"
    if not _looks_like_pidfile(first.partition(",")[0]):
        raise LineError(f"the pidfile is missing ({first!r} is not a pidfile path)", usage)
    if not rest:
        raise LineError(f"the command is missing after the pidfile {first!r}", usage)
    return first, rest


def _first_and_rest(value: str) -> tuple[str, str]:
    """Split off the first word (spaces or tabs), as uWSGI splits PIDFILE or LEGION from CMD."""
    parts = value.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _looks_like_pidfile(token: str) -> bool:
    """Whether the first word can be a pidfile rather than the program (uWSGI issue #2561)."""
    if "/" not in token and ("." not in token or shutil.which(token)):
        return False
    is_program = os.path.isfile(token) and os.access(token, os.X_OK)
    return token.endswith(".pid") or not is_program


def _set_pidfile(token: str, state: LineState) -> None:
    path, comma, freq = token.rpartition(",") if "," in token else (token, "", "")
    if comma and not digits(freq):
        raise LineError(f"the pidfile check count {freq!r} after ',' must be a whole number")
    state.decl["pidfile"] = path
    if comma:
        state.decl["start_timeout"] = int(freq)


def _legion(parse: Callable[[str, LineState], None]) -> Callable[[str, LineState], None]:
    def parse_legion(value: str, state: LineState) -> None:
        legion, rest = _first_and_rest(value)
        if not rest:
            raise LineError(f"the command is missing after the legion {legion!r}", "write 'LEGION CMD'")
        state.decl["leader"] = {"lock": legion, "backend": state.leader_backend}
        parse(rest, state)

    return parse_legion


_PARSERS: dict[str, Callable[[str, LineState], None]] = {
    "attach-daemon": attach,
    "attach-control-daemon": _control,
    "smart-attach-daemon": _smart,
    "smart-attach-daemon2": _smart2,
    "attach-daemon2": parse_kv,
    "legion-attach-daemon": _legion(attach),
    "legion-smart-attach-daemon": _legion(_smart),
    "legion-smart-attach-daemon2": _legion(_smart2),
    **cron_parsers(),
}
