"""Validated specs written back as native declarations, for ``attachdaemon migrate`` (docs/migrate.md).

:func:`declarations_for` turns the specs a uWSGI file gave into one declaration per daemon
holding only what differs from the defaults, then parses them back and adds, key by key, what
the parse did not give back (a kind's own default, such as a smart daemon's ``on_reload``),
until parsing the declarations gives the same specs. A line uWSGI ran through ``/bin/sh -c`` is
written as that explicit command (the ``shell`` flag is not a declaration key); a smart one also
names its program in ``process_name``, which is what the flag meant. :func:`render_toml` and
:func:`render_python` write the result as ``[daemons.NAME]`` tables or as ``ATTACH_DAEMONS``.

Runs in the ``attachdaemon migrate`` process only; writes nothing itself.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from attachdaemon_core.spec.declarations import parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, LeaderSpec, ReadyProbe

__all__ = ["RoundTripError", "declarations_for", "render_python", "render_toml", "same_specs"]

DEFAULT = DaemonSpec(name="x", command=("x",))
SKIPPED = frozenset({"name", "extra", "shell", "dependencies"})  # dependencies go with depends_on
SIGNAL_KEYS = ("stop_signal", "reload_signal", "reload_stop_signal")
KIND_DEFAULTS = ("on_reload", "log", "restart")  # differ from DaemonSpec's for smart daemons, jobs…
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


class RoundTripError(ValueError):
    """The declarations written do not parse back to the specs read (a bug here: say so)."""


def declarations_for(specs: Sequence[DaemonSpec], base_dir: str) -> dict[str, dict[str, Any]]:
    """name -> declaration, in the specs' order, parsing back to ``specs`` (else RoundTripError)."""
    decls = {spec.name: _minimal(spec) for spec in specs}
    for _ in range(3):
        differing = {s.name: _differences(s, a) for s, a in zip(specs, _parse(decls, base_dir), strict=True)}
        if not any(differing.values()):
            return _prune(decls, specs, base_dir)
        for spec in specs:
            for key in differing[spec.name]:
                decls[spec.name][key] = _value(spec, key)
    raise RoundTripError(f"these keys do not survive the round trip: {differing}")


def _parse(decls: Mapping[str, Mapping[str, Any]], base_dir: str) -> tuple[DaemonSpec, ...]:
    try:
        return parse_declarations(dict(decls), base_dir=base_dir, source="the migrated declarations")
    except ConfigError as exc:
        raise RoundTripError(str(exc)) from None


def _prune(
    decls: dict[str, dict[str, Any]], specs: Sequence[DaemonSpec], base_dir: str
) -> dict[str, dict[str, Any]]:
    """Leave out a key that is only the default of the daemon's kind (a job's ``on_reload =
    "keep"``), then check the whole again."""
    for key in KIND_DEFAULTS:
        trial = {name: {k: v for k, v in decl.items() if k != key} for name, decl in decls.items()}
        for spec, again in zip(specs, _parse(trial, base_dir), strict=True):
            if not _differences(spec, again):
                decls[spec.name].pop(key, None)
    left = same_specs(specs, _parse(decls, base_dir))
    if left:
        raise RoundTripError(f"these keys do not survive the round trip: {left}")
    return decls


def same_specs(first: Sequence[DaemonSpec], second: Sequence[DaemonSpec]) -> list[str]:
    """What differs between two readings, spec by spec (empty: the same), ``shell`` aside."""
    if [s.name for s in first] != [s.name for s in second]:
        return [f"names differ: {[s.name for s in first]} != {[s.name for s in second]}"]
    return [
        f"{a.name}: {', '.join(keys)}"
        for a, b in zip(first, second, strict=True)
        if (keys := _differences(a, b))
    ]


def _differences(spec: DaemonSpec, again: DaemonSpec) -> list[str]:
    out = []
    for f in dataclasses.fields(DaemonSpec):
        if f.name in SKIPPED or (f.name == "process_name" and spec.shell and spec.pidfile):
            continue
        if getattr(spec, f.name) != getattr(again, f.name):
            out.append("depends_on" if f.name == "dependencies" else f.name)
    if spec.requirements() != again.requirements():
        out.append("depends_on")
    return list(dict.fromkeys(out))


def _minimal(spec: DaemonSpec) -> dict[str, Any]:
    decl: dict[str, Any] = {}
    for f in dataclasses.fields(DaemonSpec):
        if f.name in SKIPPED or getattr(spec, f.name) == getattr(DEFAULT, f.name):
            continue
        decl[f.name] = _value(spec, f.name)
    if spec.shell and spec.pidfile and spec.process_name is None:
        words = spec.command[-1].split()  # /bin/sh -c "exec prog …": the program after exec
        if len(words) > 1:
            decl["process_name"] = words[1]
    return decl


def _value(spec: DaemonSpec, key: str) -> Any:
    value = getattr(spec, key)
    if key in SIGNAL_KEYS and value is not None:
        return _signal_name(value)
    if key == "depends_on":
        return _depends_on(spec)
    if key == "env":
        return dict(value)
    if key == "umask" and value is not None:
        return f"0{value:03o}"
    if isinstance(value, ReadyProbe):
        return _ready(value)
    if isinstance(value, LeaderSpec):
        return _leader(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _signal_name(number: int) -> str | int:
    try:
        return signal.Signals(number).name
    except ValueError:
        return number


def _depends_on(spec: DaemonSpec) -> list[str] | dict[str, Any]:
    deps = spec.requirements()
    if all(d.condition == "ready" and not d.restart for d in deps):
        return [d.name for d in deps]
    return {d.name: {"condition": d.condition, "restart": True} if d.restart else d.condition for d in deps}


def _ready(probe: ReadyProbe) -> dict[str, Any]:
    if probe.tcp is not None:
        return {"tcp": f"{probe.tcp[0]}:{probe.tcp[1]}"}
    if probe.command is not None:
        return {"command": list(probe.command)}
    for key in ("http", "log", "notify", "postgres"):
        if getattr(probe, key):
            return {key: getattr(probe, key)}
    return {}


def _leader(leader: LeaderSpec) -> dict[str, Any]:
    default = LeaderSpec(lock=leader.lock)
    out: dict[str, Any] = {"lock": leader.lock}
    for key in ("backend", "lease", "renew", "on_lead", "on_unlead"):
        value = getattr(leader, key)
        if value != getattr(default, key):
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def render_toml(decls: Mapping[str, Mapping[str, Any]], header: str) -> str:
    """``[daemons.NAME]`` tables, for ``attachdaemon --config`` and ``attach_daemons``."""
    out = [header]
    for name, decl in decls.items():
        out.append(f"\n[daemons.{_toml_key(name)}]")
        out += [f"{_toml_key(k)} = {_toml(v)}" for k, v in decl.items()]
    return "\n".join(out) + "\n"


def render_python(decls: Mapping[str, Mapping[str, Any]], header: str) -> str:
    """``ATTACH_DAEMONS = {...}`` for Django settings or a Flask config."""
    out = [header, "ATTACH_DAEMONS = {"]
    for name, decl in decls.items():
        out.append(f"    {name!r}: {{")
        out += [f"        {key!r}: {value!r}," for key, value in decl.items()]
        out.append("    },")
    return "\n".join([*out, "}"]) + "\n"


def _toml_key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")  # pragma: no cover - the values above only
