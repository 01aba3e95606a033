"""The keys of limits and planned restarts (docs/declarations.md, "Limits"): ``max_rss``,
``limit_check_interval``, ``max_lifetime`` and ``restart_at``; the rule tying them to the
other keys is in ``key_rules``."""

from __future__ import annotations

import re

from attachdaemon_core.spec.converters import Context, Converter, Invalid, show_value

MIB = 1024 * 1024
MIN_RSS = MIB  # below this a number is a unit forgotten ("512" meant 512M), never a real limit
MAX_SECONDS = 10**9
MIN_LIFETIME = 1.0

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_CLOCK_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")


def parse_size(text: str) -> int | None:
    """``"512M"``, ``"1.5G"``, ``"64MiB"``, ``"200k"``, ``"1048576"`` -> bytes (units of 1024)."""
    match = _SIZE_RE.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_duration(text: str) -> float | None:
    """``"24h"``, ``"1h30m"``, ``"2d"``, ``"90s"`` -> seconds; None when it is not one."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_RE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        return None
    return sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts)


def max_rss(value: object, ctx: Context) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Invalid(f"must be a size such as '512M' or a number of bytes, not {show_value(value)}")
    size = value if isinstance(value, int) else parse_size(value)
    if size is None:
        raise Invalid(f"must be a size such as '512M', '2G' or a number of bytes, not {show_value(value)}")
    if size < MIN_RSS:
        bare = isinstance(value, int) or value.strip().isdigit()
        hint = f"write '{size}M' for {size} MiB" if bare else None
        raise Invalid(f"must be at least 1M, not {show_value(value)} ({size} bytes)", hint)
    return size


def max_lifetime(value: object, ctx: Context) -> float | None:
    if value is None:
        return None
    seconds = _duration(value)
    if seconds < MIN_LIFETIME:
        raise Invalid(f"must be at least {MIN_LIFETIME:g} second, not {show_value(value)}")
    return seconds


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"must be a duration such as '24h' or a number of seconds, not {show_value(value)}")
    seconds = float(value) if not isinstance(value, str) else parse_duration(value)
    if seconds is None:
        raise Invalid(f"must be a duration such as '24h', '90m' or '1h30m', not {show_value(value)}")
    if not 0 <= seconds <= MAX_SECONDS:
        raise Invalid(f"must be a duration of 0 to {MAX_SECONDS} seconds, not {show_value(value)}")
    return seconds


def restart_at(value: object, ctx: Context) -> tuple[str, ...]:
    """``"04:00"`` or a list of them: local times of day, kept as ``HH:MM``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise Invalid(f"must be a time of day such as '04:00', or a list of them, not {show_value(value)}")
    times = []
    for item in items:
        match = _CLOCK_RE.match(item.strip()) if isinstance(item, str) else None
        if match is None:
            hint = "24-hour local time, hours 0-23 and minutes 00-59"
            raise Invalid(f"must be a time of day such as '04:00', not {show_value(item)}", hint)
        times.append(f"{int(match.group(1)):02d}:{match.group(2)}")
    return tuple(sorted(set(times)))


def limit_check_interval(value: object, ctx: Context) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 86400:
        hint = "write a plain number of seconds, without quotes" if isinstance(value, str) else None
        raise Invalid(f"must be a number of seconds from 0.1 to 86400, not {show_value(value)}", hint)
    return float(value)


CONVERTERS: dict[str, Converter] = {
    "max_rss": max_rss,
    "limit_check_interval": limit_check_interval,
    "max_lifetime": max_lifetime,
    "restart_at": restart_at,
}
