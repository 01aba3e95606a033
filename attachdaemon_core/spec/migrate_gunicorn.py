"""uWSGI's own options turned into gunicorn settings, or listed with the reason they are not
(docs/migrate.md). :func:`translate` takes the resolved options of a uWSGI file (as
:func:`~attachdaemon_core.spec.uwsgi_file.read_options` and
:func:`~attachdaemon_core.spec.placeholders.resolve` give them) and returns the settings, each
with the uWSGI line it came from, and the options left over with why and what to use instead.

Runs in the ``attachdaemon migrate`` process only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from attachdaemon_core.spec.placeholders import Option

__all__ = ["Setting", "Translation", "Untranslated", "translate"]


@dataclass
class Setting:
    """One gunicorn setting, with the uWSGI lines it comes from and what to know about it."""

    name: str
    value: Any
    sources: list[str] = field(default_factory=list)  # "http-socket (line 3)"
    note: str = ""


@dataclass(frozen=True)
class Untranslated:
    key: str
    lines: tuple[int, ...]
    reason: str


@dataclass
class Translation:
    settings: dict[str, Setting] = field(default_factory=dict)
    untranslated: list[Untranslated] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in gunicorn.conf.py as comments

    def set(self, opt: Option, name: str, value: Any, note: str = "") -> None:
        setting = self.settings.setdefault(name, Setting(name, value))
        setting.value = value
        setting.sources.append(f"{opt.key} (line {opt.line})")
        if note and note not in setting.note:
            setting.note = f"{setting.note} {note}".strip()

    def append(self, opt: Option, name: str, value: Any, note: str = "") -> None:
        previous = self.settings[name].value if name in self.settings else []
        self.set(opt, name, [*previous, value], note)


SOCKET_NOTE = (
    "uWSGI's socket speaks the uwsgi protocol, which gunicorn does not: it is bound here as HTTP;"
    " in nginx, replace uwsgi_pass with proxy_pass http://… (and uwsgi_params with proxy headers)."
)
TOUCH_NOTE = (
    "uWSGI reloads when this file is touched; gunicorn's reload = True restarts the workers when"
    " it changes, and also when any loaded Python file changes (a development setting); in"
    " production send the master SIGHUP instead (kill -HUP $(cat gunicorn.pid))."
)
DIE_ON_TERM_NOTE = "SIGTERM is a graceful shutdown in gunicorn already (SIGINT/SIGQUIT: quick)."


def _bind(value: str) -> str:
    """uWSGI's address (``:8000``, ``[::]:5000``, ``/tmp/app.sock``) as a gunicorn bind."""
    address = value.split(",", maxsplit=1)[0].strip()
    if address.startswith(":"):
        return "0.0.0.0" + address
    if "/" in address or address.startswith("@") or ":" not in address:
        return "unix:" + address
    return address


def _module(opt: Option, out: Translation) -> None:
    out.set(opt, "wsgi_app", opt.value if ":" in opt.value else f"{opt.value}:application")


def _callable(opt: Option, out: Translation) -> None:
    module = out.settings.get("wsgi_app")
    base = module.value.split(":")[0] if module else "wsgi"
    out.set(opt, "wsgi_app", f"{base}:{opt.value}")


def _wsgi_file(opt: Option, out: Translation) -> None:
    path = opt.value
    out.set(opt, "wsgi_app", f"{os.path.splitext(os.path.basename(path))[0]}:application")
    folder = os.path.dirname(path)
    if folder:
        out.append(opt, "pythonpath", folder, "the folder of the wsgi-file, so its module imports")


def _https(opt: Option, out: Translation) -> None:
    parts = [p.strip() for p in opt.value.split(",")]
    out.append(opt, "bind", _bind(parts[0]))
    if len(parts) >= 3:
        out.set(opt, "certfile", parts[1])
        out.set(opt, "keyfile", parts[2])


def _simple(
    name: str, convert: Callable[[str], Any] = str, note: str = ""
) -> Callable[[Option, Translation], None]:
    def apply(opt: Option, out: Translation) -> None:
        out.set(opt, name, convert(opt.value), note)

    return apply


def _listed(
    name: str, convert: Callable[[str], Any] = str, note: str = ""
) -> Callable[[Option, Translation], None]:
    def apply(opt: Option, out: Translation) -> None:
        out.append(opt, name, convert(opt.value), note)

    return apply


def _flag(name: str, note: str = "") -> Callable[[Option, Translation], None]:
    def apply(opt: Option, out: Translation) -> None:
        if opt.value.strip().lower() not in ("0", "false", "no", "off"):
            out.set(opt, name, True, note)

    return apply


def _number(text: str) -> int:
    return int(text.strip())


def _die_on_term(opt: Option, out: Translation) -> None:
    out.notes.append(f"{opt.key} (line {opt.line}): {DIE_ON_TERM_NOTE}")


def _touch(opt: Option, out: Translation) -> None:
    out.append(opt, "reload_extra_files", opt.value, TOUCH_NOTE)
    out.set(opt, "reload", True)


TRANSLATORS: dict[str, Callable[[Option, Translation], None]] = {
    "http": _listed("bind", _bind),
    "http-socket": _listed("bind", _bind),
    "socket": _listed("bind", _bind, SOCKET_NOTE),
    "uwsgi-socket": _listed("bind", _bind, SOCKET_NOTE),
    "https": _https,
    "processes": _simple("workers", _number),
    "workers": _simple("workers", _number),
    "threads": _simple("threads", _number),
    "harakiri": _simple("timeout", _number),
    "max-requests": _simple("max_requests", _number),
    "max-requests-delta": _simple("max_requests_jitter", _number),
    "listen": _simple("backlog", _number),
    "chdir": _simple("chdir"),
    "env": _listed("raw_env"),
    "module": _module,
    "wsgi": _module,
    "callable": _callable,
    "wsgi-file": _wsgi_file,
    "file": _wsgi_file,
    "pythonpath": _listed("pythonpath"),
    "python-path": _listed("pythonpath"),
    "pp": _listed("pythonpath"),
    "touch-reload": _touch,
    "py-autoreload": _flag("reload", "restart the workers when a Python file changes (development)"),
    "uid": _simple("user"),
    "gid": _simple("group"),
    "pidfile": _simple("pidfile"),
    "logto": _simple("errorlog"),
    "procname-prefix": _simple("proc_name"),
    "procname-prefix-spaced": _simple("proc_name"),
    "die-on-term": _die_on_term,
}
# Options whose values are numbers: a value that is not one is listed as not translated.
NUMERIC = frozenset(
    {"processes", "workers", "threads", "harakiri", "max-requests", "max-requests-delta", "listen"}
)


def translate(options: Sequence[Option], handled: frozenset[str], reasons: dict[str, str]) -> Translation:
    """gunicorn settings from ``options``; ``handled`` keys (the daemons', the reader's) are
    left out of both lists; ``reasons`` (key -> why, and the gunicorn or Django way) explains the
    rest, a generic reason for a key it does not know."""
    out = Translation()
    left: dict[str, list[int]] = {}
    why: dict[str, str] = {}
    for opt in options:
        if opt.key in handled or opt.placeholder:
            continue
        apply = TRANSLATORS.get(opt.key)
        problem = _untranslatable(opt) if apply is not None else None
        if apply is None or problem is not None:
            left.setdefault(opt.key, []).append(opt.line)
            if problem is not None:
                why[opt.key] = problem
            continue
        apply(opt, out)
    for key, lines in left.items():
        reason = why.get(key) or reasons.get(key) or UNKNOWN
        out.untranslated.append(Untranslated(key, tuple(lines), reason))
    return out


UNKNOWN = "no gunicorn equivalent known here; check whether your deployment still needs it"


def _untranslatable(opt: Option) -> str | None:
    """Why an option we translate cannot be, as written: a placeholder left, or not a number."""
    left = [*dict.fromkeys([*opt.unresolved, *opt.magic_errors])]
    if left:
        return (
            f"{', '.join(left)} cannot be resolved here: set the variable where you run migrate, or write "
            "the value into the gunicorn setting yourself"
        )
    if opt.key in NUMERIC and not opt.value.strip().isdigit():
        return f"{opt.value!r} is not a number; set it by hand"
    return None
