"""The command of a uWSGI daemon line (docs/declarations.md, "uWSGI lines"): which shell syntax it
uses, which of it is refused (a daemon is one command), and the declaration fields it becomes.

``attach`` is what every option of the family does with its command; :mod:`.uwsgi_lines` and
:mod:`.uwsgi_kv` call it. ``shell_syntax`` and ``show_constructs`` also judge a native ``command``
string (spec/converters.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex

from attachdaemon_core.spec.uwsgi_state import LineError, LineState

__all__ = [
    "NATIVE_HINT",
    "SEMICOLON_HINT",
    "attach",
    "command_fields",
    "native_hint",
    "set_process_name",
    "shell_syntax",
    "show_constructs",
]

NATIVE_HINT = "use a wrapper script ending in exec"
SEMICOLON_HINT = "uWSGI runs the command with /bin/sh -c, which ignores it"
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")*""", re.S)


# --- shell syntax --------------------------------------------------------------------------------


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


# --- the command's fields ------------------------------------------------------------------------


def command_fields(cmd: str) -> tuple[dict[str, object], str]:
    """Turn a uWSGI command into declaration fields and the program word (for the name)."""
    cmd = re.sub(r"\Aexec\s+", "", cmd.strip())
    if not cmd or cmd == "exec":
        raise LineError("the command is missing")
    refused, needs_sh = shell_syntax(cmd)
    if "unterminated quote" in refused:
        raise LineError("the command has an unterminated quote")
    if refused:
        what = show_constructs(refused)
        raise LineError(
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
        raise LineError(f"the command cannot be split into arguments: {exc}") from None


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


def attach(value: str, state: LineState) -> None:
    """Set the line's command fields and program from a uWSGI command (any option of the family)."""
    fields, state.program = command_fields(_drop_trailing_semicolon(value, state))
    state.decl.update(fields)


def _drop_trailing_semicolon(cmd: str, state: LineState) -> str:
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


def set_process_name(state: LineState) -> None:
    """A shell-wrapped smart daemon's pidfile names the real program, not /bin/sh."""
    if state.decl.get("shell"):
        state.decl["process_name"] = os.path.expanduser(os.path.expandvars(state.program))
