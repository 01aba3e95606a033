"""The rules tying a declaration's keys together (docs/declarations.md), in one place: a key
that applies only with another, and keys refused together. Each rule reads the converted
values; one whose other key was itself invalid is not said (that key's own problem is).

The keys' converters stay with their families (``converters``, ``schedule_keys``,
``self_report``, ``limits``); one-shots' rules are in ``oneshots`` and the leader's lease
arithmetic in ``declarations``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from attachdaemon_core.spec.model import ReadyProbe
from attachdaemon_core.spec.schedule_keys import JOB_KEYS

Found = list[tuple[str, str, str | None]]  # key, message, hint


def is_set(value: object) -> bool:
    return value is not None and value is not False


def _unset(value: object) -> bool:
    return not is_set(value)


@dataclass(frozen=True)
class Rule:
    """``key`` (when ``given`` holds of its value) said as ``message`` when ``clash`` holds of
    ``other``'s value."""

    key: str
    other: str
    message: str
    hint: str | None
    given: Callable[[Any], bool] = is_set
    clash: Callable[[Any], bool] = is_set

    def problems(self, fields: Mapping[str, Any], bad: set[str]) -> Found:
        if (
            self.other in bad
            or not self.given(fields.get(self.key))
            or not self.clash(fields.get(self.other))
        ):
            return []
        return [(self.key, self.message, self.hint)]


def only_with(
    key: str,
    other: str,
    hint: str | None,
    *,
    what: str = "",
    given: Callable[[Any], bool] = is_set,
    met: Callable[[Any], bool] = is_set,
) -> Rule:
    """``key`` applies only with ``other`` (``met`` says when its value counts): "only applies
    with ``what``" (``other`` by default)."""
    return Rule(key, other, f"only applies with {what or other}", hint, given, lambda v: not met(v))


def check(rules: Iterable[Rule], fields: Mapping[str, Any], bad: set[str]) -> Found:
    """Every rule's problems, in the rules' order."""
    return [p for rule in rules for p in rule.problems(fields, bad)]


def _notify(probe: object) -> bool:
    return isinstance(probe, ReadyProbe) and probe.notify


def _log_probe(probe: object) -> bool:
    return isinstance(probe, ReadyProbe) and probe.log is not None


def _postgres_probe(probe: object) -> bool:
    return isinstance(probe, ReadyProbe) and probe.postgres


_JOB_HINT = "a job runs its command to the end at each scheduled time"

RULES = (
    # Any daemon's: a pidfile makes it smart; the environment.
    Rule("daemonize", "pidfile", "needs a pidfile", "the supervisor writes the pid there", bool, _unset),
    only_with("process_name", "pidfile", None, what="a pidfile", given=bool),
    Rule(
        "control",
        "pidfile",
        "a control daemon cannot have a pidfile",
        "a control daemon is attached: drop pidfile or control",
        bool,
    ),
    Rule(
        "log",
        "pidfile",
        "'prefix' pipes output through the supervisor, which a smart daemon outlives",
        "use a log path, 'runtime' (the default) or 'raw'",
        lambda v: v == "prefix",
    ),
    Rule(
        "ready",
        "pidfile",
        "the postgres probe needs a pidfile",
        "set pidfile to the data directory's postmaster.pid",
        _postgres_probe,
        _unset,
    ),
    only_with(
        "env_keep",
        "env_clear",
        "add env_clear = true, or drop env_keep: without it the daemon gets the whole environment",
        given=bool,
        met=bool,
    ),
)

# A job's (docs/declarations.md, "Jobs"): its own keys need a schedule; a schedule refuses these.
JOB_RULES = (
    *(only_with(key, "schedule", "add schedule = '…', or drop it") for key in JOB_KEYS[1:]),
    Rule("pidfile", "schedule", "a job cannot have a pidfile", _JOB_HINT),
    Rule("control", "schedule", "a job cannot be a control daemon", _JOB_HINT, bool),
    Rule("ready", "schedule", "a job has no readiness probe", _JOB_HINT),
)

# Self-reported readiness (docs/declarations.md, "Readiness") and limits ("Limits").
SELF_REPORT_RULES = (
    only_with(
        "watchdog_timeout",
        "ready",
        "add ready = {notify = true}: the daemon pings WATCHDOG=1 on its NOTIFY_SOCKET",
        what="ready = {notify = true}",
        met=_notify,
    ),
    Rule(
        "ready",
        "log",
        "a log probe needs the output captured, and log is 'raw'",
        "use log 'prefix', 'runtime' or a path, or another probe",
        _log_probe,
        lambda v: v == "raw",
    ),
)
LIMIT_RULES = (
    only_with(
        "limit_check_interval",
        "max_rss",
        "add max_rss, or drop limit_check_interval: nothing else is checked on that timer",
    ),
)
