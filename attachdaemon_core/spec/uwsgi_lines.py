"""uWSGI daemon option lines turned into native declaration dicts (docs/declarations.md, "uWSGI lines").

``parse_uwsgi_line("smart-attach-daemon = /tmp/mc.pid memcached -d -P /tmp/mc.pid")`` gives
``{"name": "memcached", "pidfile": "/tmp/mc.pid", "command": [...]}``; the dict is then validated
like any other declaration by :func:`attachdaemon_core.spec.declarations.parse_declarations`, which is
the only caller that sees the private ``shell`` key. Runs in whichever process reads settings.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Collection, Sequence

from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import Problem

__all__ = ["OPTIONS", "derive_names", "parse_uwsgi_line", "shell_syntax", "show_constructs"]

OPTIONS = (
    "attach-daemon",
    "attach-control-daemon",
    "smart-attach-daemon",
    "smart-attach-daemon2",
    "attach-daemon2",
    "legion-attach-daemon",
    "legion-smart-attach-daemon",
    "legion-smart-attach-daemon2",
)

# attach-daemon2 keys and aliases -> canonical uWSGI key.
KV_KEYS = {
    "command": "command",
    "cmd": "command",
    "exec": "command",
    "freq": "freq",
    "pidfile": "pidfile",
    "daemonize": "daemonize",
    "daemon": "daemonize",
    "control": "control",
    "touch": "touch",
    "stopsignal": "stopsignal",
    "stop_signal": "stopsignal",
    "reloadsignal": "reloadsignal",
    "reload_signal": "reloadsignal",
    "stdin": "stdin",
    "uid": "uid",
    "gid": "gid",
    "chdir": "chdir",
    "max_throttle": "max_throttle",
    "notifypid": "notifypid",
    "ns_pid": "ns_pid",
}

NATIVE_HINT = "use a wrapper script ending in exec"
SEMICOLON_HINT = "uWSGI runs the command with /bin/sh -c, which ignores it"
_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_ENV_PLACEHOLDER = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")*""", re.S)
_OPTION_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_MAGIC = re.compile(r"%%|%\([^)]*\)?|%[A-Za-z0-9\[]|@\([^)]*\)?")  # matched left to right: "%%h" is "%" "h"
_CONFIG_PLACEHOLDER = re.compile(r"%\([^)]*\)?")
_FLAG_KEYS = frozenset({"daemonize", "control", "stdin", "notifypid"})


class _LineError(Exception):
    """A problem that ends the parsing of a line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _Line:
    """What one line has produced so far: declaration fields, program, problems."""

    def __init__(self, leader_backend: str) -> None:
        self.leader_backend = leader_backend
        self.decl: dict[str, object] = {}
        self.program = ""
        self.problems: list[tuple[str, str | None]] = []
        self.notes: list[tuple[str, str | None]] = []  # warnings (W004): the line is still accepted

    def problem(self, message: str, hint: str | None = None) -> None:
        self.problems.append((message, hint))


def parse_uwsgi_line(line: str, *, leader_backend: str = "file") -> tuple[dict[str, object], list[Problem]]:
    """Parse one uWSGI option line into a native declaration (with ``name``) and its problems.

    The name is derived from the program (``memcached``); it is ``""`` when the line is too broken
    to tell. Problems name the daemon when its name is known, else they quote the line. Problems
    whose code starts with ``W`` are notes on an accepted line (a dropped trailing ``;``, an
    attach-daemon2 key uWSGI ignores), not errors.
    """
    state = _Line(leader_backend)
    option = ""
    try:
        option, value = split_option(line)
        # A config file's line went through uWSGI's magic_sub; its command line did not.
        value = expand_placeholders(value, config_file=not line.strip().startswith("--"))
        _PARSERS[option](value, state)
    except _LineError as exc:
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


# --- the option and its value -------------------------------------------------------------------


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
            raise _LineError("not a uWSGI option line", hint="write 'attach-daemon = CMD'")
        option, value = text[:cut], text[cut + 1 :]
    option = option.strip().lower().replace("_", "-")
    if not _OPTION_NAME.match(option):
        raise _LineError("not a uWSGI option line", hint="write 'attach-daemon = CMD'")
    if option not in OPTIONS:
        raise _LineError(f"unknown option {option!r}", hint=did_you_mean(option, OPTIONS))
    value = value.strip()
    if not value:
        raise _LineError(f"{option} needs a value")
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
        raise _LineError(f"environment variable {names} is not set")
    return _ENV_PLACEHOLDER.sub(lambda m: os.environ[m.group(1)], value)


def _placeholder_error(token: str) -> _LineError:
    kind = "file reader" if token.startswith("@") else "placeholder"
    hint = "write the value out, or use $(NAME) for an environment variable"
    return _LineError(f"uWSGI {kind} {token!r} is not supported", hint=hint)


# --- the command ---------------------------------------------------------------------------------


def shell_syntax(cmd: str) -> tuple[list[str], list[str]]:
    """Find shell syntax: (constructs making it several commands, constructs needing /bin/sh).

    The first list holds ``;``, ``&&``, ``||``, ``|``, ``&``, ``(``, ```…```, ``$(…)``, a newline
    or an unterminated quote; the second redirections, ``$VAR``, globs, ``~``, ``#``, ``VAR=x``.
    """
    refused: list[str] = []
    needs_sh: list[str] = []
    if _ASSIGNMENT.match(cmd):
        needs_sh.append("VAR=value")
    quote = ""
    i = 0
    while i < len(cmd):
        c = cmd[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif quote == '"' and c == '"':
            quote = ""
        elif c in "$`":
            i += _substitution(cmd, i, refused, needs_sh) - 1
        elif quote:
            pass
        elif c in "'\"":
            quote = c
        else:
            i += _operator(cmd, i, refused, needs_sh) - 1
        i += 1
    if quote:
        refused.append("unterminated quote")
    return refused, needs_sh


_CD_AND = re.compile(r"cd\s+(\S+)\s*&&\s*(\S.*)", re.DOTALL)


def native_hint(cmd: str, refused: list[str]) -> str:
    """The native declaration a refused line stands for, ready to paste (JSON, which a Python
    settings file reads as is): ``cd DIR && CMD`` is CMD in ``cwd`` DIR; a trailing ``&`` is not
    needed; anything else runs in an explicit shell (which is then the daemon)."""
    cd = _CD_AND.fullmatch(cmd)
    if cd and not shell_syntax(cd.group(2))[0]:
        decl: dict[str, object] = {"command": cd.group(2).strip(), "cwd": cd.group(1)}
        return f"declare it natively as {json.dumps(decl)}"
    if refused == ["trailing &"]:
        decl = {"command": cmd.rstrip()[:-1].rstrip()}
        return f"declare it natively as {json.dumps(decl)}: the supervisor already runs it in the background"
    decl = {"command": ["/bin/sh", "-c", cmd]}
    return f"declare it natively as {json.dumps(decl)}, where the shell is the daemon, or {NATIVE_HINT}"


def show_constructs(constructs: list[str]) -> str:
    """``'&&', a trailing '&'`` for messages, each construct once."""
    shown = ("a trailing '&'" if c == "trailing &" else repr(c) for c in dict.fromkeys(constructs))
    return ", ".join(shown)


def _substitution(cmd: str, i: int, refused: list[str], needs_sh: list[str]) -> int:
    """Classify ``$`` or a backtick at ``i``; a command substitution spans to its end."""
    if cmd[i] == "`":
        end = cmd.find("`", i + 1)
        refused.append("`…`")
        return (end if end > 0 else len(cmd)) - i + 1
    if cmd[i + 1 : i + 2] != "(":
        needs_sh.append("$")
        return 1
    depth, j = 0, i + 1
    while j < len(cmd):
        depth += {"(": 1, ")": -1}.get(cmd[j], 0)
        if depth == 0:
            break
        j += 1
    refused.append("$(…)")
    return j - i + 1


def _operator(cmd: str, i: int, refused: list[str], needs_sh: list[str]) -> int:
    """Classify the unquoted character at ``i``; return how many characters it spans."""
    c, nxt, prev = cmd[i], cmd[i + 1 : i + 2], cmd[i - 1 : i]
    word_start = i == 0 or prev.isspace()
    if c in "&|" and nxt == c:
        refused.append(c * 2)
        return 2
    if c == "&" and prev in "<>" and prev:
        needs_sh.append(">&")
    elif c == "&":
        refused.append("trailing &" if not cmd[i + 1 :].strip() else "&")
    elif c in ";|()\n":
        refused.append({"\n": "newline"}.get(c, c))
    elif c in "<>*?[" or (c in "~#" and word_start):
        needs_sh.append(c)  # redirection, glob, tilde or comment: sh gives them their meaning
    return 1


def command_fields(cmd: str) -> tuple[dict[str, object], str]:
    """Turn a uWSGI command into declaration fields and the program word (for the name)."""
    cmd = re.sub(r"\Aexec\s+", "", cmd.strip())
    if not cmd or cmd == "exec":
        raise _LineError("the command is missing")
    refused, needs_sh = shell_syntax(cmd)
    if "unterminated quote" in refused:
        raise _LineError("the command has an unterminated quote")
    if refused:
        what = show_constructs(refused)
        raise _LineError(
            f"shell syntax {what} is not supported: a daemon is one command", native_hint(cmd, refused)
        )
    assignments, rest = _split_assignments(cmd)
    program = _first_word(rest or cmd)
    if needs_sh:
        # `exec` after any VAR=value prefix: sh exports those to the program it becomes.
        return {"command": ["/bin/sh", "-c", f"{assignments}exec {rest}"], "shell": True}, program
    try:
        return {"command": shlex.split(cmd)}, program
    except ValueError as exc:  # a trailing backslash
        raise _LineError(f"the command cannot be split into arguments: {exc}") from None


def _split_assignments(cmd: str) -> tuple[str, str]:
    """Split leading ``VAR=value`` words (quotes allowed in values) from the rest of a command."""
    pos = 0
    while match := _ASSIGNMENT.match(cmd, pos):
        word = _SHELL_WORD.match(cmd, match.end())
        end = word.end() if word else match.end()
        pos = len(cmd) - len(cmd[end:].lstrip())
    return cmd[:pos], cmd[pos:]


def _first_word(cmd: str) -> str:
    """The program word, quotes removed when the command splits cleanly."""
    try:
        words = shlex.split(cmd, comments=True)
    except ValueError:
        words = cmd.split()
    return words[0] if words else cmd


# --- the options ---------------------------------------------------------------------------------


def _attach(value: str, state: _Line) -> None:
    fields, state.program = command_fields(_drop_trailing_semicolon(value, state))
    state.decl.update(fields)


def _drop_trailing_semicolon(cmd: str, state: _Line) -> str:
    """``CMD;`` means ``CMD`` to ``/bin/sh -c``, which uWSGI runs it with: drop the ``;``, with a note.

    Only a lone unquoted, unescaped ``;`` ending a non-empty command goes; anything else is left for
    :func:`command_fields` to judge (``a; b``, ``a;;``, ``a & ;`` stay refused).
    """
    text = cmd.rstrip()
    cut = text[:-1].rstrip()
    if not text.endswith(";") or not cut:
        return cmd
    if shell_syntax(text)[0].count(";") != shell_syntax(cut)[0].count(";") + 1:
        return cmd  # the ';' is escaped or quoted: an argument
    state.notes.append(("the trailing ';' was dropped", SEMICOLON_HINT))
    return cut


def _control(value: str, state: _Line) -> None:
    _attach(value, state)
    state.decl["control"] = True


def _smart(value: str, state: _Line) -> None:
    pid_token, cmd = _split_pidfile(value)
    _set_pidfile(pid_token, state)
    _attach(cmd, state)
    _set_process_name(state)


def _smart2(value: str, state: _Line) -> None:
    _smart(value, state)
    state.decl["daemonize"] = True


def _split_pidfile(value: str) -> tuple[str, str]:
    """Split ``PIDFILE[,FREQ] CMD``; refuse a line whose first word is clearly not a pidfile."""
    first, rest = _first_and_rest(value)
    usage = "write 'PIDFILE CMD' with a space between them"
    if not _looks_like_pidfile(first.partition(",")[0]):
        raise _LineError(f"the pidfile is missing ({first!r} is not a pidfile path)", usage)
    if not rest:
        raise _LineError(f"the command is missing after the pidfile {first!r}", usage)
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


def _set_pidfile(token: str, state: _Line) -> None:
    path, comma, freq = token.rpartition(",") if "," in token else (token, "", "")
    if comma and not _digits(freq):
        raise _LineError(f"the pidfile check count {freq!r} after ',' must be a whole number")
    state.decl["pidfile"] = path
    if comma:
        state.decl["start_timeout"] = int(freq)


def _set_process_name(state: _Line) -> None:
    """A shell-wrapped smart daemon's pidfile names the real program, not /bin/sh."""
    if state.decl.get("shell"):
        state.decl["process_name"] = os.path.expanduser(os.path.expandvars(state.program))


def _legion(parse: Callable[[str, _Line], None]) -> Callable[[str, _Line], None]:
    def parse_legion(value: str, state: _Line) -> None:
        legion, rest = _first_and_rest(value)
        if not rest:
            raise _LineError(f"the command is missing after the legion {legion!r}", "write 'LEGION CMD'")
        state.decl["leader"] = {"lock": legion, "backend": state.leader_backend}
        parse(rest, state)

    return parse_legion


# --- attach-daemon2 ------------------------------------------------------------------------------


def split_kvlist(value: str) -> list[tuple[str, str | None]]:
    """Split uWSGI's ``key=value,…`` (``\\`` escapes the next character); a bare key has None.

    Keys stay as written, spaces and case included: uWSGI compares them exactly (strcmp).
    """
    items, buf, escaped = [], [], False
    for c in value + ",":
        if escaped:
            buf.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            items.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        key, eq, val = item.partition("=")
        if key.strip():
            pairs.append((key, val if eq else None))
    return pairs


def _kv(value: str, state: _Line) -> None:
    """uWSGI's uwsgi_kvlist_parse stores only ``key=value`` items whose key it knows exactly.

    A known key without ``=`` or with a space around it is ignored as uWSGI ignores it, with a
    note; a key it does not know at all is refused (uWSGI ignores it too, silently).
    """
    raw: dict[str, str] = {}
    ignored: dict[str, str] = {}  # canonical key -> why it does not count
    for key, val in split_kvlist(value):
        canonical = KV_KEYS.get(key)
        if canonical is not None and val is not None:
            if canonical in raw:
                state.problem(f"attach-daemon2 key {canonical!r} is given twice")
            else:
                raw[canonical] = val
        elif key.strip() in KV_KEYS:
            message, hint = _ignored_key(key, val)
            state.notes.append((f"{message}, and so does attachdaemon", hint))
            ignored.setdefault(KV_KEYS[key.strip()], message)
        else:
            state.problem(f"unknown attach-daemon2 key {key!r}", _unknown_key_hint(key))
    for key, val in raw.items():
        try:
            _KV_HANDLERS[key](val, state)
        except _LineError as exc:
            state.problem(exc.message, exc.hint)
    if "command" not in raw:
        state.problem("attach-daemon2 needs command=…", ignored.get("command"))
    _kv_reload(state)
    if "pidfile" in state.decl and "command" in state.decl:
        _set_process_name(state)


def _ignored_key(key: str, val: str | None) -> tuple[str, str | None]:
    """Why uWSGI ignores a known key written ``key`` (no ``=``) or `` key=…`` (a space), and the fix."""
    name = key.strip()
    if val is None:
        fix = "1" if KV_KEYS[name] in _FLAG_KEYS else "…"
        spaced = ", without the space," if key != name else ""
        hint = None if name == "ns_pid" else f"write {name}={fix}{spaced} to use it"
        return f"key {name!r} has no value: uWSGI ignores it", hint
    where = {
        (True, False): "after the ','",
        (False, True): "before the '='",
    }.get((key[0].isspace(), key[-1].isspace()), "around the key")
    return (
        f"key {key!r} has a space, so it is not {name!r}: uWSGI ignores it",
        f"remove the space {where} to use it",
    )


def _unknown_key_hint(key: str) -> str | None:
    name = key.strip()
    if name.lower() == "legion":
        return "use legion-attach-daemon"
    if name.lower() in KV_KEYS:
        return f"attach-daemon2 keys are lower-case: write {name.lower()!r}"
    if any(c.isspace() for c in name):  # no key has a space: a piece of the command
        return "if it is part of the command, write the ',' before it as '\\,'"
    return did_you_mean(name, KV_KEYS)


def _kv_command(val: str, state: _Line) -> None:
    _attach(_text("command", val), state)


def _kv_flag(field: str) -> Callable[[str, _Line], None]:
    def handle(val: str, state: _Line) -> None:
        word = val.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _LineError(f"{field} must be 1, true, yes, on or 0, false, no, off, not {val!r}")
        if word in _TRUE:
            state.decl[field] = True

    return handle


def _kv_field(field: str, convert: Callable[[str, str], object]) -> Callable[[str, _Line], None]:
    def handle(val: str, state: _Line) -> None:
        state.decl[field] = convert(field, _text(field, val))

    return handle


def _kv_id(field: str) -> Callable[[str, _Line], None]:
    """uid/gid: a number (0 means "unchanged", as in uWSGI) or, beyond uWSGI, a name."""

    def handle(val: str, state: _Line) -> None:
        text = _text(field, val).strip()
        if _digits(text) and int(text) == 0:
            return
        state.decl["user" if field == "uid" else "group"] = int(text) if _digits(text) else text

    return handle


def _kv_max_throttle(val: str, state: _Line) -> None:
    number = _whole("max_throttle", _text("max_throttle", val))
    if number:  # 0 keeps the default cap
        state.decl["max_backoff"] = number


def _kv_touch(val: str, state: _Line) -> None:
    state.decl["touch"] = [p for p in _text("touch", val).split(";") if p.strip()]


def _kv_reloadsignal(val: str, state: _Line) -> None:
    state.decl["_reloadsignal"] = _signal_value("reloadsignal", _text("reloadsignal", val))


def _kv_ns_pid(val: str, state: _Line) -> None:
    raise _LineError("ns_pid (a new PID namespace) is not supported", "run it in a container")


def _kv_reload(state: _Line) -> None:
    """Map reloadsignal and notifypid to on_reload (docs/declarations.md); notifypid acts on smart daemons."""
    number = state.decl.pop("_reloadsignal", 0)
    notify = state.decl.pop("notifypid", False)
    if "pidfile" in state.decl:
        if notify:
            state.decl["on_reload"] = "signal"
            if number:
                state.decl["reload_signal"] = number
    elif number:
        state.decl["on_reload"] = "restart"
        state.decl["reload_stop_signal"] = number


def _text(field: str, val: str) -> str:
    if not val.strip():
        raise _LineError(f"{field} needs a value")
    return val


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _whole(field: str, text: str) -> int:
    if not _digits(text.strip()):
        raise _LineError(f"{field} must be a whole number, not {text!r}")
    return int(text)


def _signal_value(field: str, text: str) -> int | str:
    """A number stays a number (0 = unset, as in uWSGI); a name is checked with the declaration."""
    text = text.strip()
    return int(text) if _digits(text) else text


_PARSERS: dict[str, Callable[[str, _Line], None]] = {
    "attach-daemon": _attach,
    "attach-control-daemon": _control,
    "smart-attach-daemon": _smart,
    "smart-attach-daemon2": _smart2,
    "attach-daemon2": _kv,
    "legion-attach-daemon": _legion(_attach),
    "legion-smart-attach-daemon": _legion(_smart),
    "legion-smart-attach-daemon2": _legion(_smart2),
}

_KV_HANDLERS: dict[str, Callable[[str, _Line], None]] = {
    "command": _kv_command,
    "freq": _kv_field("start_timeout", lambda f, t: _whole("freq", t)),
    "pidfile": _kv_field("pidfile", lambda f, t: t.strip()),
    "daemonize": _kv_flag("daemonize"),
    "control": _kv_flag("control"),
    "stdin": _kv_flag("stdin"),
    "notifypid": _kv_flag("notifypid"),
    "touch": _kv_touch,
    "stopsignal": _kv_field("stop_signal", _signal_value),
    "reloadsignal": _kv_reloadsignal,
    "uid": _kv_id("uid"),
    "gid": _kv_id("gid"),
    "chdir": _kv_field("cwd", lambda f, t: t.strip()),
    "max_throttle": _kv_max_throttle,
    "ns_pid": _kv_ns_pid,
}
