"""uWSGI's placeholders, resolved as uWSGI 2.0 resolves them (core/uwsgi.c, core/utils.c).

Two stages, in uWSGI's order:

1. **Magic variables** (``%d``, ``%n``, …) are replaced in a file's text as it is read
   (``magic_sub``), from a table made for that file (``config_magic_table_fill``): :func:`magic_table`
   and :func:`magic_sub`. ``%%`` is a literal ``%``; ``%(`` is left for stage 2. uWSGI replaces a
   letter it has no value for with nothing; here that is an error, since it is nearly always a
   ``strftime`` or shell ``%`` that lost its ``%%``.
2. **References**, once every file is read, over every option's value in three passes
   (``uwsgi_apply_config_pass``): ``$(NAME)`` from the environment, then ``@(FILE)`` (the file's
   text, one trailing newline dropped), then ``%(OPTION)`` (the value of the *first* option so
   named, a ``set-placeholder`` included; ``%(a b + 1)`` concatenates and counts). A replaced
   value is scanned again from its second character, as uWSGI does, so a value may hold
   further references. uWSGI leaves a reference it cannot resolve in the value as written;
   :func:`resolve` does too and records it, and the caller decides whether the option matters
   (an unresolved reference in a line attachdaemon uses is an error).

Runs in whichever process reads the configuration; reads files and the environment, nothing else.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import sys
import time
from collections.abc import Callable, Mapping, MutableSequence
from dataclasses import dataclass, field

__all__ = ["Option", "magic_sub", "magic_table", "resolve"]

# Letters uWSGI knows a value for; capitals are the first file's value (%D is the first %d).
FILE_LETTERS = "opsdnecx0123456789ij"
FIRST_ROUND = {
    "O": "o",
    "D": "d",
    "S": "s",
    "P": "p",
    "C": "c",
    "E": "e",
    "N": "n",
    "X": "x",
    "I": "i",
    "J": "j",
}
NO_VALUE = {"b": "the uWSGI binary's path", "V": "the uWSGI version"}


@dataclass
class Option:
    """One ``key = value`` as uWSGI records it: in file order, repeated keys kept, with its line."""

    key: str
    value: str
    file: str
    line: int
    placeholder: bool = False  # made by set-placeholder (or set): a name for %(…), not a uWSGI key
    unresolved: list[str] = field(default_factory=list)  # references uWSGI would leave as written
    magic_errors: list[str] = field(default_factory=list)  # %-letters without a value

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}"


def magic_table(path: str, section: str, first: Mapping[str, str] | None = None) -> dict[str, str]:
    """The magic variables of one config file: ``path`` absolute, ``section`` as named after ``:``.

    ``%d`` ends with ``/`` (uWSGI keeps it); ``%0``…``%9`` are the directory's components; the
    capital letters take ``first``'s values (the first file read), or this file's.
    """
    # uWSGI keeps a symlink's own path and resolves any other (uwsgi_expand_path: realpath)
    full = os.path.abspath(path) if os.path.islink(path) else os.path.realpath(path)
    directory, name = full.rsplit("/", 1)
    table = {
        "o": path,
        "p": full,
        "s": name,
        "d": directory + "/",
        "c": os.path.basename(directory),
        "n": name.rsplit(".", 1)[0] if "." in name else name,
        "e": name.rsplit(".", 1)[1] if "." in name else "",
        "x": section,
        "j": _djb33x(full).to_bytes(4, sys.byteorder).hex(),
        "%": "%",
        "(": "%(",
        "[": "\033",
        "v": os.getcwd(),
        "h": socket.gethostname(),
        "t": str(int(time.time())),
        "T": str(int(time.time() * 1_000_000)),
        "k": str(os.cpu_count() or 1),
        "u": str(os.getuid()),
        "U": _user_name(),
        "g": str(os.getgid()),
        "G": _group_name(),
    }
    try:
        table["i"] = str(os.lstat(full).st_ino)
    except OSError:
        table["i"] = ""
    for digit, part in zip("0123456789", [p for p in directory.split("/") if p], strict=False):
        table[digit] = part
    for digit in "0123456789":
        table.setdefault(digit, "")
    source = first if first is not None else table
    for capital, letter in FIRST_ROUND.items():
        table[capital] = source[letter]
    return table


def magic_sub(text: str, table: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its magic variables replaced, and the ``%X`` uWSGI would blank (no value)."""
    out: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and i + 1 < len(text):
            letter = text[i + 1]
            value = table.get(letter)
            if value is None:
                unknown.append("%" + letter)
                value = ""
            out.append(value)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out), unknown


def unknown_magic_hint(token: str) -> str:
    """Why a magic variable has no value here, and the fix."""
    letter = token[1:]
    if letter in NO_VALUE:
        return f"{token} is {NO_VALUE[letter]}, which does not exist without uWSGI: write the value out"
    return f"uWSGI replaces {token} with nothing; write %%{letter} for a literal %{letter}"


def resolve(options: MutableSequence[Option], environ: Mapping[str, str] | None = None) -> None:
    """Resolve ``$(…)``, then ``@(…)``, then ``%(…)`` in every option's value, in place.

    ``set-placeholder`` values are options of the list (the reader adds them where they stand);
    ``%(NAME)`` is the first option so named.
    """
    env = os.environ if environ is None else environ

    def option_value(key: str) -> str | None:
        if " " in key:
            return _pipeline(key, first_value)
        return first_value(key)

    def first_value(key: str) -> str | None:
        return next((opt.value for opt in options if opt.key == key), None)

    _apply_pass(options, "$", env.get)
    _apply_pass(options, "@", _read_at_file)
    _apply_pass(options, "%", option_value)


def _pipeline(key: str, lookup: Callable[[str], str | None]) -> str:
    """uWSGI's ``%(a b + 2)``: tokens concatenated, ``+ - * /`` between two numbers (C ``strtoll``,
    division by zero is 0), ``++``/``--`` add or take one; an unknown option is empty."""
    current: str | None = None
    op = ""
    for word in key.split():
        if word in ("+", "-", "*", "/"):
            op = word
            continue
        if word in ("++", "--"):
            if current is not None:
                current = str(_number(current) + (1 if word == "++" else -1))
            op = ""
            continue
        value = word if word.isdigit() else (lookup(word) or "")
        if not op:
            current = (current or "") + value
        else:
            a, b = _number(current or ""), _number(value)
            result = {"+": a + b, "-": a - b, "*": a * b}.get(op)
            current = str(result if result is not None else (0 if b == 0 else int(a / b)))
        op = ""
    return current or ""


def _number(text: str) -> int:
    """C ``strtoll(text, NULL, 10)``: leading blanks, a sign and digits; 0 when none."""
    stripped = text.lstrip()
    sign = -1 if stripped.startswith("-") else 1
    digits = stripped.lstrip("+-")
    end = next((i for i, c in enumerate(digits) if not c.isdigit()), len(digits))
    return sign * int(digits[:end]) if end else 0


def _apply_pass(options: MutableSequence[Option], symbol: str, hook: Callable[[str], str | None]) -> None:
    for opt in options:
        opt.value, left = _substitute(opt.value, symbol, hook)
        opt.unresolved += left


def _substitute(value: str, symbol: str, hook: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """One pass over one value: each ``SYMBOL(KEY)`` (balanced parentheses) whose hook answers is
    replaced and the scan starts again from the beginning; the others stay, and are returned."""
    left: list[str] = []
    start = 0
    for _ in range(10_000):  # a reference to itself would loop for ever in uWSGI; stop instead
        found = _next_reference(value, symbol, start)
        if found is None:
            return value, left
        begin, end = found
        key = value[begin + 2 : end]
        replacement = hook(key)
        if replacement is None:
            left.append(value[begin : end + 1])
            start = end + 1
            continue
        value = value[:begin] + replacement + value[end + 1 :]
        start = 1  # uWSGI scans again from the second character (j = 0, then j++)
    left.append(f"{symbol}(…) nested too deep")
    return value, left


def _next_reference(value: str, symbol: str, start: int) -> tuple[int, int] | None:
    """(index of the symbol, index of its closing parenthesis) of the next reference, or None."""
    i = value.find(symbol + "(", start)
    while i >= 0:
        depth = 0
        for j in range(i + 2, len(value)):
            if value[j] == "(":
                depth += 1
            elif value[j] == ")":
                if depth == 0:
                    if j > i + 2:
                        return i, j
                    break  # "$()" is not a reference
                depth -= 1
        i = value.find(symbol + "(", i + 1)
    return None


def _read_at_file(path: str) -> str | None:
    """``@(FILE)``: the file's text with one trailing newline dropped; None when it cannot be read
    (uWSGI exits then; the caller reports the reference as unresolved)."""
    if "://" in path:
        return None  # uWSGI's exec://, http://, … schemes: not read here
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    return text[:-1] if text.endswith(("\n", "\r")) else text


def _djb33x(text: str) -> int:
    """uWSGI's djb33x hash (``%j``) over the path's bytes, read as C ``char`` (signed)."""
    h = 5381
    for b in text.encode():
        h = ((h * 33) ^ (b if b < 128 else b - 256)) & 0xFFFFFFFF
    return h


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _group_name() -> str:
    try:
        return grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        return str(os.getgid())
