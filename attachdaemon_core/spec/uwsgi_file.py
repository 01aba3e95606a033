"""uWSGI config files (``.ini``, ``.yaml``/``.yml``, ``.json``) read into uWSGI's option list.

:func:`read_options` reads ``FILE[:SECTION]`` the way uWSGI 2.0 does (``core/ini.c``,
``core/yaml.c``, ``core/json.c``, ``core/config.c``; docs/uwsgi-files.md): the file's text goes
through the magic variables first (:func:`~attachdaemon_core.spec.placeholders.magic_sub`), then
each ``key = value`` of the asked section (default ``uwsgi``) becomes an
:class:`~attachdaemon_core.spec.placeholders.Option`, in file order, repeated keys kept. On the
way it does what uWSGI does at that moment: ``ini``/``include``/``inherit``/``yaml``/``json``
read another file (or ``:section`` of this one) in place; ``set``/``set-ph``/``set-placeholder``
add an option; the ``if-*``/``endif`` and ``for*``/``endfor`` blocks keep or drop and
repeat what they enclose, with ``%(_)`` replaced. References (``$(…)``, ``@(…)``, ``%(…)``)
are left for :func:`~attachdaemon_core.spec.placeholders.resolve`.

Runs in whichever process reads the configuration; reads files and the environment only.
"""

from __future__ import annotations

import glob
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from attachdaemon_core.spec.placeholders import Option, magic_sub, magic_table

__all__ = ["SUFFIXES", "Reading", "is_uwsgi_file", "read_options", "split_section"]

SUFFIXES = {".ini": "ini", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".js": "json"}
LOADERS = {"ini": "ini", "yaml": "yaml", "yml": "yaml", "json": "json", "js": "json"}
INCLUDES = frozenset({"include", "inherit", *LOADERS})
MAX_DEPTH = 16  # uWSGI follows includes until the stack runs out; a loop is a mistake
END_KEYS = frozenset({"end", "endif", "end-if", "endfor", "end-for"})
SET_KEYS = frozenset({"set", "set-placeholder", "set-ph"})


@dataclass
class Reading:
    """What one read produced: the options in uWSGI's order, and what stopped parts of it."""

    options: list[Option] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each names the file and line


def split_section(spec: str) -> tuple[str, str]:
    """``app.ini:web`` -> (``app.ini``, ``web``); no section -> (path, ``""``). uWSGI cuts at the
    last ``:``, so a path holding one needs a section after it."""
    path, colon, section = spec.rpartition(":")
    if colon and "/" not in section:
        return path, section
    return spec, ""


def is_uwsgi_file(spec: str) -> bool:
    """True when ``spec`` (a path, maybe with ``:section``) names a uWSGI config file by suffix."""
    path, _ = split_section(spec)
    return os.path.splitext(path)[1].lower() in SUFFIXES


def read_options(spec: str, base_dir: str, environ: Mapping[str, str] | None = None) -> Reading:
    """Read ``spec`` (``FILE[:SECTION]``, relative to ``base_dir``) and what it includes."""
    reader = _Reader(os.environ if environ is None else environ, base_dir)
    path, section = split_section(spec)
    reader.load(os.path.join(base_dir, os.path.expanduser(path)), section, None)
    if reader.logic is not None and reader.logic.opened_at:
        reader.out.problems.append(f"{reader.logic.opened_at}: this block has no endif/endfor")
    return reader.out


@dataclass
class _Logic:
    """An open ``if-*`` or ``for*`` block: what it does with each enclosed option."""

    apply: Callable[[Option], list[Option]]
    opened_at: str


class _Reader:
    def __init__(self, environ: Mapping[str, str], base_dir: str) -> None:
        self.environ = environ
        self.base = base_dir
        self.out = Reading()
        self.first: dict[str, str] | None = None  # the first file's table: the capital letters
        self.logic: _Logic | None = None
        self.depth = 0

    # -- files ---------------------------------------------------------------------------------
    def load(self, path: str, section: str, where: Option | None) -> None:
        """One file (or one section of it), its options added in order."""
        path = os.path.abspath(path)
        kind = SUFFIXES.get(os.path.splitext(path)[1].lower(), "ini")
        if self.depth >= MAX_DEPTH:
            self.out.problems.append(
                f"{where.where if where else path}: includes nest deeper than {MAX_DEPTH}"
            )
            return
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
            self.out.problems.append(f"{where.where + ': ' if where else ''}cannot read {path}: {why}")
            return
        table = magic_table(path, section, self.first)
        self.first = self.first or table
        found = False
        self.depth += 1
        try:
            for opt in _FORMATS[kind](text, table, path, section or "uwsgi", self.out.problems):
                found = True
                self.add(opt)
        finally:
            self.depth -= 1
        if not found and kind == "ini":
            self.out.problems.append(
                f"{path}: no section [{section or 'uwsgi'}] (uWSGI warns and reads nothing)"
            )

    # -- options -------------------------------------------------------------------------------
    def add(self, opt: Option) -> None:
        """uWSGI's ``add_exported_option``: logic blocks first, then immediate options."""
        if opt.key in END_KEYS:
            self.logic = None
        elif self.logic is not None:
            for made in self.logic.apply(opt):
                self.immediate(made)
            return
        self.immediate(opt)

    def immediate(self, opt: Option) -> None:
        self.out.options.append(opt)
        if opt.key in SET_KEYS:
            name, eq, value = opt.value.partition("=")
            if not eq:
                self.out.problems.append(f"{opt.where}: {opt.key} needs NAME=VALUE")
            else:
                self.out.options.append(Option(name, value, opt.file, opt.line, placeholder=True))
        elif opt.key in INCLUDES:
            self.include(opt)
        elif opt.key in _OPENERS:
            if self.logic is not None:
                self.out.problems.append(
                    f"{opt.where}: a block inside a block (uWSGI exits: recursive logic)"
                )
            self.logic = _Logic(_OPENERS[opt.key](self, opt.value), opt.where)

    def include(self, opt: Option) -> None:
        """``ini = :other`` reads another section of the file being read; a relative path is
        taken, as uWSGI opens it, against the directory uWSGI runs in: here, the base directory."""
        path, section = split_section(opt.value)
        self.load(os.path.join(self.base, path) if path else opt.file, section, opt)

    def logic_result(self, keep: bool, opt: Option, data: str | None) -> list[Option]:
        if not keep:
            return []
        value = opt.value.replace("%(_)", data) if data is not None else opt.value
        return [Option(opt.key, value, opt.file, opt.line)]


# -- logic: each opener returns what the block does with one enclosed option -------------------
def _if(
    test: Callable[[_Reader, str], str | None], negate: bool = False
) -> Callable[[_Reader, str], Callable[[Option], list[Option]]]:
    """An ``if-*``: ``test`` gives the ``%(_)`` value when the condition holds, else None."""

    def opener(reader: _Reader, arg: str) -> Callable[[Option], list[Option]]:
        def apply(opt: Option) -> list[Option]:
            data = test(reader, arg)
            if negate:
                return reader.logic_result(data is None, opt, arg if data is None else None)
            return reader.logic_result(data is not None, opt, data)

        return apply

    return opener


def _compare(found: str | None, arg: str) -> str | None:
    """``if-env = NAME=VALUE``: the variable must hold VALUE; ``if-env = NAME``: be set."""
    _, eq, want = arg.partition("=")
    if found is None or (eq and found != want):
        return None
    return found


def _env_test(reader: _Reader, arg: str) -> str | None:
    return _compare(reader.environ.get(arg.partition("=")[0]), arg)


def _opt_test(reader: _Reader, arg: str) -> str | None:
    name = arg.partition("=")[0]
    found = next((o.value for o in reader.out.options if o.key == name), None)
    return _compare(found, arg)


def _path_test(check: Callable[[str], bool]) -> Callable[[_Reader, str], str | None]:
    return lambda _reader, arg: arg if check(arg) else None


def _hostname_test(_reader: _Reader, arg: str) -> str | None:
    return arg if socket.gethostname() == arg else None


def _for(split: Callable[[str], list[str]]) -> Callable[[_Reader, str], Callable[[Option], list[Option]]]:
    def opener(_reader: _Reader, arg: str) -> Callable[[Option], list[Option]]:
        return lambda opt: [
            Option(opt.key, opt.value.replace("%(_)", x), opt.file, opt.line) for x in split(arg)
        ]

    return opener


def _readlines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    except (OSError, UnicodeDecodeError):
        return []


_OPENERS: dict[str, Callable[[_Reader, str], Callable[[Option], list[Option]]]] = {
    "if-env": _if(_env_test),
    "ifenv": _if(_env_test),
    "if-not-env": _if(_env_test, negate=True),
    "if-opt": _if(_opt_test),
    "if-not-opt": _if(_opt_test, negate=True),
    "if-exists": _if(_path_test(os.path.exists)),
    "ifexists": _if(_path_test(os.path.exists)),
    "if-not-exists": _if(_path_test(os.path.exists), negate=True),
    "if-file": _if(_path_test(os.path.isfile)),
    "if-not-file": _if(_path_test(os.path.isfile), negate=True),
    "if-dir": _if(_path_test(os.path.isdir)),
    "ifdir": _if(_path_test(os.path.isdir)),
    "if-directory": _if(_path_test(os.path.isdir)),
    "if-not-dir": _if(_path_test(os.path.isdir), negate=True),
    "if-hostname": _if(_hostname_test),
    "if-not-hostname": _if(_hostname_test, negate=True),
    "if-reload": _if(lambda _r, _a: None),  # a first start is never a reload
    "if-not-reload": _if(lambda _r, _a: ""),
    "for": _for(lambda arg: arg.split()),
    "for-times": _for(lambda arg: [str(i) for i in range(1, int(arg) + 1)] if arg.strip().isdigit() else []),
    "for-glob": _for(lambda arg: sorted(glob.glob(arg)) or [arg]),
    "for-readline": _for(_readlines),
}


# -- formats: each yields the options of the asked section, magic variables replaced ----------
def _magic(text: str, table: Mapping[str, str], path: str, line: int, key: str) -> tuple[str, Option]:
    value, unknown = magic_sub(text, table)
    opt = Option(key, value, path, line)
    opt.magic_errors += unknown
    return value, opt


def _ini(
    text: str, table: Mapping[str, str], path: str, asked: str, _problems: list[str]
) -> Iterator[Option]:
    """``core/ini.c``: ``[section]`` headers, ``;``/``#`` comment lines (no inline comments), a
    key without ``=`` is a flag with an empty value; keys and values stripped."""
    section = ""
    for number, raw in enumerate(text.split("\n"), 1):
        line, unknown = magic_sub(raw, table)
        line = line.strip(" \t\r")
        if not line or line[0] in ";#":
            continue
        if line[0] == "[":
            section = line[1:-1]
            continue
        if section != asked:
            continue
        key, _, value = line.partition("=")
        opt = Option(key.rstrip(" \t\r"), value.strip(" \t\r"), path, number)
        opt.magic_errors += unknown
        yield opt


def _yaml(
    text: str, table: Mapping[str, str], path: str, asked: str, problems: list[str]
) -> Iterator[Option]:
    """``core/yaml.c`` (uWSGI's own reader, not libyaml): ``SECTION:`` then indented
    ``key: value`` lines; ``#`` starts a comment anywhere; a list item ends the section."""
    inside, depth_seen, found = False, 0, False
    for number, raw in enumerate(text.split("\n"), 1):
        replaced, unknown = magic_sub(raw, table)  # uWSGI replaces them in the text, first
        line = replaced.split("#", 1)[0]
        if not line:
            continue
        depth = len(line) - len(line.lstrip(" \t\r"))
        if depth <= depth_seen:
            depth_seen = depth
            if inside:
                return
        elif not inside:
            continue
        stripped = line.strip(" \t\r")
        if not stripped or stripped[0] in "-[{":
            if inside:
                return
            continue
        if not inside:
            inside = stripped.partition(":")[0] == asked and ":" in stripped
            found = found or inside
            continue
        cut = min((i for i in (stripped.find(": "), stripped.find(":\t")) if i >= 0), default=-1)
        if cut < 0:
            return
        opt = Option(stripped[:cut].rstrip(" \t"), stripped[cut + 2 :].strip(" \t\r"), path, number)
        opt.magic_errors += unknown
        yield opt
    if not found:
        problems.append(f"{path}: no {asked}: mapping")


def _json(
    text: str, table: Mapping[str, str], path: str, asked: str, problems: list[str]
) -> Iterator[Option]:
    """``core/json.c`` (jansson): the object ``asked``; true/false/null are ``1``/``0``/``0``,
    a list repeats its key. The magic variables are replaced in each string (uWSGI: in the
    text; the same unless a value holds a quote). A line is the key's first line in the text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{path}, line {exc.lineno}: JSON syntax error: {exc.msg}")
        return
    section = data.get(asked) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        problems.append(f"{path}: no {asked!r} object (uWSGI exits)")
        return
    lines = text.split("\n")
    for key, value in section.items():
        line = next((n for n, raw in enumerate(lines, 1) if json.dumps(key) in raw), 0)
        for item in value if isinstance(value, list) else [value]:
            yield _magic(_json_text(item), table, path, line, key)[1]


def _json_text(value: object) -> str:
    if value is True:
        return "1"
    if value is False or value is None:
        return "0"
    return str(int(value)) if isinstance(value, float) else str(value)


_FORMATS = {"ini": _ini, "yaml": _yaml, "json": _json}
