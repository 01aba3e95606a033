"""The keys of a job, a declaration with ``schedule`` (docs/declarations.md, "Jobs"): converters
and defaults; the rules tying them to the other keys are in ``key_rules``. The cron expression is
checked with ``cronsim``, the ``cron`` extra; without it a schedule is error E003 naming the extra."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attachdaemon_core.spec.converters import Context, Converter, Invalid, _bool, _number, show_value

__all__ = ["JOB_CONVERTERS", "JOB_KEYS", "job_defaults", "missing_cronsim"]

JOB_KEYS = ("schedule", "unique", "timeout", "timezone")
CRON_EXTRA_HINT = "pip install 'attachdaemon[cron]'"
_ZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*\Z")


def missing_cronsim() -> str | None:
    """Why schedules cannot be read in this Python (``cronsim`` cannot be imported), or None."""
    try:
        import cronsim  # noqa: F401
    except ImportError as exc:
        return f"a schedule needs the Python package 'cronsim', which cannot be imported ({exc})"
    return None


def _schedule(value: object, ctx: Context) -> str:
    """A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a cron expression such as '*/5 * * * *', not {show_value(value)}")
    expr = " ".join(value.split())
    if len(expr.split()) not in (5, 6):
        hint = "minute hour day month weekday, e.g. '30 2 * * *' (a sixth field first: seconds)"
        raise Invalid(f"must have 5 fields (or 6 with seconds first), not {len(expr.split())}", hint)
    missing = missing_cronsim()
    if missing is not None:
        raise Invalid(missing, CRON_EXTRA_HINT, code="E003")
    from datetime import datetime, timezone

    from cronsim import CronSim, CronSimError

    try:
        next(CronSim(expr, datetime.now(timezone.utc)))
    except CronSimError as exc:
        raise Invalid(f"{expr!r} is not a valid cron expression: {exc}") from None
    except StopIteration:
        raise Invalid(f"{expr!r} never matches a date") from None
    return expr


def _timeout(value: object, ctx: Context) -> float | None:
    if value is None:
        return None
    seconds = _number(value, "a number of seconds")
    if seconds <= 0:
        raise Invalid("must be more than 0 seconds (or none for no timeout)")
    return seconds


def _timezone(value: object, ctx: Context) -> str:
    """An IANA time zone name (``Europe/Paris``, ``UTC``), checked against the zone database."""
    hint = "an IANA name such as 'Europe/Paris' or 'UTC'; without it, the server's local time"
    if not isinstance(value, str) or not _ZONE.match(value):
        raise Invalid(f"must be a time zone name, not {show_value(value)}", hint)
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise Invalid(f"unknown time zone {value!r}", hint) from None
    return value


JOB_CONVERTERS: dict[str, Converter] = {
    "schedule": _schedule,
    "unique": _bool,
    "timeout": _timeout,
    "timezone": _timezone,
}


def job_defaults(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A job's own defaults: a server reload lets a run finish (``on_reload: keep``)."""
    return {"on_reload": "keep"} if fields.get("schedule") is not None else {}
