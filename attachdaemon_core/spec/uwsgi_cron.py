"""uWSGI's cron lines turned into job declarations (docs/declarations.md, "uWSGI lines").

``cron = 0 -2 -1 -1 -1 /usr/bin/backup`` gives ``{"schedule": "0 */2 * * *", "command": [...]}``.
uWSGI's fields (core/cron.c, core/utils.c ``uwsgi_cron_task_needs_execution``): five integers,
minute hour day month weekday; ``-1`` is any, ``-N`` matches the values divisible by N (months
counted from 1, so month ``-2`` is February, April…), weekday 7 is Sunday. They become a
standard cron expression. uWSGI matches day and weekday both when either is negative; a cron
expression does too except for a ``-N`` day with a fixed weekday, which is refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.uwsgi_command import shell_syntax
from attachdaemon_core.spec.uwsgi_state import LineError, LineState

__all__ = [
    "CRON_OPTIONS",
    "CronLineError",
    "cron_fields",
    "cron_parsers",
    "harakiri_seconds",
    "uwsgi_schedule",
]

# core/uwsgi.c: every cron option ("cron-legion" and "unique-cron-legion" are aliases).
CRON_OPTIONS = (
    "cron",
    "cron2",
    "unique-cron",
    "legion-cron",
    "cron-legion",
    "unique-legion-cron",
    "unique-cron-legion",
)
HARAKIRI_OPTION = "cron-harakiri"  # not a job: the default timeout of the cron lines of its list

# field name, lowest value, highest value
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("week", 0, 7))
_INT = re.compile(r"-?[0-9]+\Z")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_WORDS = frozenset({"{", "}", "!", "exec", "if", "then", "else", "fi", "for", "while", "do", "done"})
_CRON2_KEYS = ("minute", "hour", "day", "month", "week", "unique", "harakiri", "legion")


CronLineError = LineError  # a cron line uWSGI would refuse, or whose meaning cron cannot carry


def uwsgi_schedule(minute: int, hour: int, day: int, month: int, week: int) -> str:
    """uWSGI's five cron numbers as a 5-field cron expression with the same matches."""
    values = (minute, hour, day, month, week)
    parts = [_field(name, lo, hi, v) for (name, lo, hi), v in zip(_FIELDS, values, strict=True)]
    if day < -1 and week >= 0:
        raise CronLineError(
            f"day {day} with weekday {week}: uWSGI runs only when both match, which a cron "
            "expression cannot say",
            "use day -1 (any) with the weekday, or a fixed day",
        )
    return " ".join(parts)


def _field(name: str, lo: int, hi: int, value: int) -> str:
    if value == -1:
        return "*"
    if value >= 0:
        if not lo <= value <= hi:
            raise CronLineError(
                f"{name} {value} is out of range ({lo} to {hi}, or -1 for any, -N for every N)"
            )
        return str(value)
    step = -value
    if name in ("minute", "hour", "week"):  # 0 is a value: every multiple of N counted from 0
        return f"*/{step}"
    matches = [str(v) for v in range(lo, hi + 1) if v % step == 0]
    if not matches:
        raise CronLineError(f"{name} {value} never matches (no {name} is a multiple of {step})")
    return ",".join(matches)


def cron_fields(
    option: str, value: str, *, cron_harakiri: float | None = None
) -> tuple[dict[str, object], str]:
    """One cron option's value as job declaration fields and the program word (for the name).

    ``cron_harakiri`` is the file's ``cron-harakiri``: the timeout of every job that sets none
    (``cron2``'s ``harakiri=0`` turns it off for that job).
    """
    decl: dict[str, object] = {}
    option = {"cron-legion": "legion-cron", "unique-cron-legion": "unique-legion-cron"}.get(option, option)
    if option in ("legion-cron", "unique-legion-cron"):
        legion, _, value = value.strip().partition(" ")
        if not value.strip():
            raise CronLineError(f"{option} needs a legion name, then the cron fields and the command")
        decl["leader"] = {"lock": legion}
    if option == "cron2":
        numbers, command, extra = _cron2(value)
        decl.update(extra)
    else:
        numbers, command = _five_numbers(value)
    decl["schedule"] = uwsgi_schedule(*numbers)
    if option.startswith("unique-"):
        decl["unique"] = True
    if "timeout" not in decl and cron_harakiri:
        decl["timeout"] = cron_harakiri
    fields, program = job_command(command)
    decl.update(fields)
    return decl, program


def _five_numbers(value: str) -> tuple[tuple[int, int, int, int, int], str]:
    words = value.split(None, 5)
    if len(words) < 6 or not all(_INT.match(w) for w in words[:5]):
        raise CronLineError(
            "needs five numbers (minute hour day month weekday, -1 for any) and a command",
            "e.g. 'cron = 0 -2 -1 -1 -1 /usr/bin/backup' runs every two hours",
        )
    n = [int(w) for w in words[:5]]
    return (n[0], n[1], n[2], n[3], n[4]), words[5]


def _cron2(value: str) -> tuple[tuple[int, int, int, int, int], str, dict[str, object]]:
    """``cron2 = key=value,… command``: the keys are optional, each number defaults to -1."""
    first, _, rest = value.strip().partition(" ")
    if "=" not in first:
        return (-1, -1, -1, -1, -1), value, {}
    if not rest.strip():
        raise CronLineError("cron2 needs a command after its key=value list")
    keys: dict[str, str] = {}
    for item in first.split(","):
        key, eq, val = item.partition("=")
        if not eq or key not in _CRON2_KEYS:
            hint = did_you_mean(key.strip(), _CRON2_KEYS) or (
                "keys: " + ", ".join(_CRON2_KEYS) + " (no blank after the commas)"
            )
            raise CronLineError(f"cron2: unknown item {item!r}", hint)
        keys[key] = val
    numbers = tuple(_cron2_int(k, keys.get(k, "-1")) for k in ("minute", "hour", "day", "month", "week"))
    extra: dict[str, object] = {}
    if _cron2_int("unique", keys.get("unique", "0")):
        extra["unique"] = True
    if "harakiri" in keys:
        harakiri = _cron2_int("harakiri", keys["harakiri"])
        extra["timeout"] = harakiri if harakiri > 0 else None  # 0: no timeout, even cron-harakiri's
    if keys.get("legion"):
        extra["leader"] = {"lock": keys["legion"]}
    return (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4]), rest, extra


def _cron2_int(key: str, text: str) -> int:
    if not _INT.match(text.strip()):
        raise CronLineError(f"cron2: {key} must be a whole number, not {text!r}")
    return int(text)


def harakiri_seconds(value: str) -> float:
    """``cron-harakiri = N``: seconds, 0 for none."""
    if not _INT.match(value.strip()) or int(value) < 0:  # (0: none, as in uWSGI)
        raise CronLineError(f"cron-harakiri must be a whole number of seconds, not {value!r}")
    return float(int(value))


def job_command(cmd: str) -> tuple[dict[str, object], str]:
    """uWSGI runs a cron command with ``/bin/sh -c``: a job runs to its end, so shell syntax is
    kept (``a && b``, pipes, ``{ …; }``) and run by ``/bin/sh``; a plain command is run directly."""
    cmd = cmd.strip()
    if not cmd:
        raise LineError("the command is missing")
    refused, needs_sh = shell_syntax(cmd)
    if "unterminated quote" in refused:
        raise LineError("the command has an unterminated quote")
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise LineError(f"the command cannot be split into arguments: {exc}") from None
    if len(argv) > 1 and argv[0] == "exec":
        argv = argv[1:]  # uWSGI's sh -c would exec it: the same process
    words = [w for w in argv if w not in _SHELL_WORDS and not _ASSIGNMENT.match(w)]
    program = words[0] if words else "job"
    if refused or needs_sh or any(w in _SHELL_WORDS for w in argv):
        return {"command": ["/bin/sh", "-c", cmd], "shell": True}, program
    return {"command": argv}, program


def _line_parser(option: str) -> Callable[[str, LineState], None]:
    def parse(value: str, state: LineState) -> None:
        decl, state.program = cron_fields(option, value, cron_harakiri=state.cron_harakiri)
        leader = decl.get("leader")
        if isinstance(leader, dict):
            leader["backend"] = state.leader_backend
        state.decl.update(decl)

    return parse


def _harakiri_alone(value: str, state: LineState) -> None:
    raise LineError(
        "cron-harakiri is not a job: it sets the timeout of the cron lines of its list",
        "put it in the same list of uWSGI lines as the cron lines, or give each job its timeout",
    )


def cron_parsers() -> dict[str, Callable[[str, LineState], None]]:
    """The cron options' line parsers, for :mod:`.uwsgi_lines`."""
    parsers = {option: _line_parser(option) for option in CRON_OPTIONS}
    parsers[HARAKIRI_OPTION] = _harakiri_alone
    return parsers


def list_harakiri(items: list[object]) -> tuple[list[object], float | None, list[str]]:
    """A list of declarations without its ``cron-harakiri`` lines, the value they set (the last
    one, as uWSGI keeps the last), and what is wrong with them."""
    kept: list[object] = []
    value: float | None = None
    problems: list[str] = []
    for item in items:
        option, _, text = item.partition("=") if isinstance(item, str) else ("", "", "")
        if option.strip().lower().replace("_", "-").lstrip("-") != HARAKIRI_OPTION:
            kept.append(item)
            continue
        try:
            value = harakiri_seconds(text.strip()) or None
        except LineError as exc:
            problems.append(f"uWSGI line {item!r}: {exc.message}")
    return kept, value, problems
