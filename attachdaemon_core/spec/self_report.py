"""The keys of readiness a daemon reports itself (docs/declarations.md, "Readiness"):
``ready = {notify = true}`` (the sd_notify protocol), ``ready = {log = "regex"}`` and
``watchdog_timeout``. The other probe kinds are converted in ``converters``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from attachdaemon_core.spec.converters import PROBES, Context, Converter, Invalid, _ready, show_value
from attachdaemon_core.spec.hints import did_you_mean
from attachdaemon_core.spec.model import ReadyProbe

SELF_REPORTED = ("notify", "log")
ALL_PROBES = (*PROBES, *SELF_REPORTED)
MAX_REGEX = 1000  # characters: a pattern longer than this is a paste accident


def ready(value: object, ctx: Context) -> ReadyProbe:
    """``ready``: one probe; ``notify`` and ``log`` here, the others in ``converters``."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, probe),) = value.items()
        if kind == "notify":
            if probe is not True:
                raise Invalid(f"notify must be true, not {show_value(probe)}")
            return ReadyProbe(notify=True)
        if kind == "log":
            return ReadyProbe(log=_regex(probe))
    if isinstance(value, Mapping):
        for key in value:
            if key not in ALL_PROBES:
                hint = did_you_mean(key, ALL_PROBES) if isinstance(key, str) else None
                raise Invalid(f"unknown probe {key!r}", hint or f"use one of {', '.join(ALL_PROBES)}")
        if len(value) != 1:
            given = f", not {len(value)} ({', '.join(map(str, value))})" if value else ""
            raise Invalid(f"needs exactly one of {', '.join(ALL_PROBES)}{given}")
    return _ready(value, ctx)


def _regex(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"log must be a regular expression such as 'ready\\\\.', not {show_value(value)}")
    if len(value) > MAX_REGEX:
        raise Invalid(f"log must be a regular expression of at most {MAX_REGEX} characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise Invalid(f"log is not a valid regular expression: {exc}", "Python's re syntax") from None
    return value


def watchdog_timeout(value: object, ctx: Context) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10**9:
        hint = "write a plain number of seconds, without quotes" if isinstance(value, str) else None
        raise Invalid(f"must be a number of seconds > 0, not {show_value(value)}", hint)
    return float(value)


CONVERTERS: dict[str, Converter] = {"ready": ready, "watchdog_timeout": watchdog_timeout}
