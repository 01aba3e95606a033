"""``attachdaemon migrate uwsgi.ini``: a uWSGI file as a gunicorn.conf.py, a daemons file and the
list of what was not translated (docs/migrate.md).

The file is read once, as everywhere else: :func:`~attachdaemon_core.spec.declarations.parse_declarations`
gives the daemons, jobs and one-shots (an error stops the migration, naming the line), and
:func:`~attachdaemon_core.spec.uwsgi_file.read_options` with
:func:`~attachdaemon_core.spec.placeholders.resolve` gives uWSGI's own options for
:mod:`.migrate_gunicorn`. The daemons are written by :mod:`.migrate_daemons`, which checks that
they parse back to the same specs.

Runs in the ``attachdaemon migrate`` process only; returns texts and writes nothing.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.migrate_daemons import declarations_for, render_python, render_toml
from attachdaemon_core.spec.migrate_gunicorn import Translation, translate
from attachdaemon_core.spec.migrate_reasons import REASONS
from attachdaemon_core.spec.model import DaemonSpec
from attachdaemon_core.spec.placeholders import resolve
from attachdaemon_core.spec.uwsgi_config import LOGIC_KEYS, REFERENCE
from attachdaemon_core.spec.uwsgi_file import read_options, split_section
from attachdaemon_core.spec.uwsgi_lines import OPTIONS as DAEMON_KEYS

__all__ = ["FORMATS", "Migration", "migrate"]

FORMATS = ("toml", "django", "flask")
DAEMONS_FILE = {
    "toml": "daemons.toml",
    "django": "attach_daemons_settings.py",
    "flask": "attach_daemons_config.py",
}
HOOKS_IMPORT = {
    "toml": "attachdaemon_core.gunicorn",
    "django": "attachdaemon_django.gunicorn",
    "flask": "attachdaemon_flask.gunicorn",
}
NOTES_FILE = "MIGRATION.md"


@dataclass(frozen=True)
class Migration:
    """The three texts, the file names they go under, and what they were made from."""

    source: str
    fmt: str
    gunicorn_conf: str
    daemons: str
    notes: str
    specs: tuple[DaemonSpec, ...]
    translation: Translation

    @property
    def files(self) -> dict[str, str]:
        return {
            "gunicorn.conf.py": self.gunicorn_conf,
            DAEMONS_FILE[self.fmt]: self.daemons,
            NOTES_FILE: self.notes,
        }


def migrate(spec: str, base_dir: str, fmt: str = "toml") -> Migration:
    """Translate ``spec`` (``uwsgi.ini[:section]``, relative to ``base_dir``, where uWSGI would
    run; placeholders from this process's environment); raises ConfigError when its daemons are
    invalid, RoundTripError on a bug here."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    source = os.path.normpath(os.path.join(base_dir, split_section(spec)[0]))
    specs = parse_declarations(spec, base_dir=base_dir, source=spec)
    reading = read_options(spec, base_dir)
    named = {word for o in reading.options for ref in REFERENCE.findall(o.value) for word in ref.split()}
    resolve(reading.options)
    handled = frozenset({*DAEMON_KEYS, *LOGIC_KEYS, *named})
    translation = translate(reading.options, handled, REASONS)
    decls = declarations_for(specs, base_dir)
    header = _daemons_header(spec, fmt)
    daemons = render_toml(decls, header) if fmt == "toml" else render_python(decls, header)
    return Migration(
        source=source,
        fmt=fmt,
        gunicorn_conf=_gunicorn_conf(spec, fmt, translation, bool(specs)),
        daemons=daemons,
        notes=_notes(spec, fmt, translation, specs),
        specs=specs,
        translation=translation,
    )


def _daemons_header(spec: str, fmt: str) -> str:
    first = (
        f"# The daemons, jobs and one-shots of {spec}, written by `attachdaemon migrate` (docs/migrate.md)."
    )
    if fmt == "toml":
        check = f"attachdaemon --config {DAEMONS_FILE[fmt]} check"
        return f"{first}\n# gunicorn.conf.py names this file; `{check}` checks it."
    if fmt == "django":
        return f'{first}\n# Paste into settings.py, with INSTALLED_APPS += ["attachdaemon_django"].'
    return (
        f"{first}\n# Put into the Flask config (app.config.from_pyfile), with AttachDaemons().init_app(app)."
    )


def _gunicorn_conf(spec: str, fmt: str, translation: Translation, has_daemons: bool) -> str:
    out = [
        f"# gunicorn.conf.py, written by `attachdaemon migrate` from {spec} (docs/migrate.md).",
        "# Start the server with: gunicorn -c gunicorn.conf.py",
        f"# What was not translated, and why, is in {NOTES_FILE}.",
    ]
    if has_daemons and fmt == "toml":
        out.append("import os")
    out.append("")
    if has_daemons:
        out.append(
            f"from {HOOKS_IMPORT[fmt]} import *  # noqa: F403  the daemons start and stop with gunicorn"
        )
        out.append("")
    out += [_comment(note) for note in translation.notes]
    for setting in translation.settings.values():
        if setting.note:
            out.append(_comment(setting.note))
        out.append(f"{setting.name} = {setting.value!r}  # {', '.join(setting.sources)}")
    if has_daemons and fmt == "toml":
        here = "os.path.dirname(os.path.abspath(__file__))"
        out.append(f"attach_daemons = os.path.join({here}, {DAEMONS_FILE[fmt]!r})")
    elif has_daemons:
        where = "Django settings" if fmt == "django" else "Flask config"
        out.append(f"# the daemons are ATTACH_DAEMONS in the {where}: see {DAEMONS_FILE[fmt]}")
    return "\n".join(out) + "\n"


def _comment(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def _notes(spec: str, fmt: str, translation: Translation, specs: tuple[DaemonSpec, ...]) -> str:
    out = [
        f"# Migrating {spec} to gunicorn",
        "",
        "Written by `attachdaemon migrate` (see docs/migrate.md in attachdaemon).",
        f"`gunicorn.conf.py` holds the server's settings; `{DAEMONS_FILE[fmt]}` the {len(specs)}"
        " daemons, jobs and one-shots, which parse back to the same declarations as the uWSGI file.",
        "",
        "## Not translated",
        "",
    ]
    if not translation.untranslated:
        out.append("Every option was translated.")
    for item in translation.untranslated:
        lines = ", ".join(map(str, item.lines))
        out.append(f"- `{item.key}` (line {lines}): {item.reason}")
    shell = [s.name for s in specs if s.shell]
    if shell:
        out += ["", "## Commands run through a shell", ""]
        out.append(
            f"uWSGI ran these through /bin/sh; they are written as that explicit command: {', '.join(shell)}."
        )
    return "\n".join(out) + "\n"
