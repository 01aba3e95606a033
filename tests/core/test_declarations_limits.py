"""The declaration keys of issue 13 §2 and §4: ``ready = {notify|log}``, ``watchdog_timeout``,
``max_rss``, ``limit_check_interval``, ``max_lifetime``, ``restart_at`` — values and exact errors."""

from __future__ import annotations

import pytest

from attachdaemon_core.spec.declarations import DECLARATION_KEYS, parse_declarations
from attachdaemon_core.spec.model import ConfigError, DaemonSpec, ReadyProbe

pytestmark = pytest.mark.unit
MIB = 1024 * 1024


def one(**decl: object) -> DaemonSpec:
    (spec,) = parse_declarations({"app": {"command": "app", **decl}})
    return spec


def problems(**decl: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_declarations({"app": {"command": "app", **decl}})
    return [str(p) for p in info.value.problems]


def test_the_new_keys_are_declaration_keys() -> None:
    for key in ("watchdog_timeout", "max_rss", "limit_check_interval", "max_lifetime", "restart_at"):
        assert key in DECLARATION_KEYS


def test_ready_notify_and_watchdog() -> None:
    spec = one(ready={"notify": True}, watchdog_timeout=30)
    assert spec.ready == ReadyProbe(notify=True) and spec.watchdog_timeout == 30.0
    assert spec.ready.self_reported and spec.ready.describe() == "notify READY=1"


def test_ready_log_keeps_the_regex() -> None:
    spec = one(ready={"log": r"celery@\S+ ready\."})
    assert spec.ready == ReadyProbe(log=r"celery@\S+ ready\.")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512M", 512 * MIB), ("1G", 1024 * MIB), ("1.5g", 1536 * MIB), ("64MiB", 64 * MIB), ("2048k", 2 * MIB)],
)
def test_max_rss_sizes(value: str, expected: int) -> None:
    assert one(max_rss=value).max_rss == expected


def test_max_rss_bytes_and_interval() -> None:
    spec = one(max_rss=200 * MIB, limit_check_interval=1.5)
    assert spec.max_rss == 200 * MIB and spec.limit_check_interval == 1.5
    assert one().limit_check_interval == 5.0 and one().max_rss is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("24h", 86400.0), ("1h30m", 5400.0), ("2d", 172800.0), ("90s", 90.0), (600, 600.0)]
)
def test_max_lifetime_durations(value: object, seconds: float) -> None:
    assert one(max_lifetime=value).max_lifetime == seconds


def test_restart_at_one_time_or_several() -> None:
    assert one(restart_at="4:00").restart_at == ("04:00",)
    assert one(restart_at=["23:30", "04:00", "04:00"]).restart_at == ("04:00", "23:30")


def test_the_new_keys_cross_the_wire() -> None:
    spec = one(ready={"log": "ready"}, max_rss="1G", max_lifetime="1h", restart_at=["04:00"])
    assert DaemonSpec.from_wire(spec.to_wire()) == spec


@pytest.mark.parametrize(
    ("decl", "expected"),
    [
        ({"ready": {"notify": 1}}, "daemon 'app', key 'ready': notify must be true, not 1"),
        (
            {"ready": {"log": "(unclosed"}},
            "daemon 'app', key 'ready': log is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0 (Python's re syntax)",
        ),
        (
            {"ready": {"notfy": True}},
            "daemon 'app', key 'ready': unknown probe 'notfy' (did you mean 'notify'?)",
        ),
        (
            {"watchdog_timeout": 10},
            "daemon 'app', key 'watchdog_timeout': only applies with ready = {notify = true} "
            "(add ready = {notify = true}: the daemon pings WATCHDOG=1 on its NOTIFY_SOCKET)",
        ),
        (
            {"ready": {"notify": True}, "watchdog_timeout": "10s"},
            "daemon 'app', key 'watchdog_timeout': must be a number of seconds > 0, not '10s' "
            "(write a plain number of seconds, without quotes)",
        ),
        (
            {"ready": {"log": "ready"}, "log": "raw"},
            "daemon 'app', key 'ready': a log probe needs the output captured, and log is 'raw' "
            "(use log 'prefix', 'runtime' or a path, or another probe)",
        ),
        (
            {"max_rss": 512},
            "daemon 'app', key 'max_rss': must be at least 1M, not 512 (512 bytes) "
            "(write '512M' for 512 MiB)",
        ),
        (
            {"max_rss": "lots"},
            "daemon 'app', key 'max_rss': "
            "must be a size such as '512M', '2G' or a number of bytes, not 'lots'",
        ),
        (
            {"limit_check_interval": 2},
            "daemon 'app', key 'limit_check_interval': only applies with max_rss "
            "(add max_rss, or drop limit_check_interval: nothing else is checked on that timer)",
        ),
        (
            {"max_rss": "1G", "limit_check_interval": 0},
            "daemon 'app', key 'limit_check_interval': must be a number of seconds from 0.1 to 86400, not 0",
        ),
        (
            {"max_lifetime": "1 day"},
            "daemon 'app', key 'max_lifetime': "
            "must be a duration such as '24h', '90m' or '1h30m', not '1 day'",
        ),
        ({"max_lifetime": 0.5}, "daemon 'app', key 'max_lifetime': must be at least 1 second, not 0.5"),
        (
            {"restart_at": "4am"},
            "daemon 'app', key 'restart_at': must be a time of day such as '04:00', not '4am' "
            "(24-hour local time, hours 0-23 and minutes 00-59)",
        ),
        (
            {"restart_at": []},
            "daemon 'app', key 'restart_at': "
            "must be a time of day such as '04:00', or a list of them, not []",
        ),
        ({"max_ram": "1G"}, "daemon 'app', key 'max_ram': unknown key (did you mean 'max_rss'?)"),
    ],
)
def test_bad_values_get_their_exact_message(decl: dict[str, object], expected: str) -> None:
    assert problems(**decl) == [expected]


def test_every_problem_at_once() -> None:
    found = problems(max_rss="x", max_lifetime="y", restart_at="z", ready={"log": "("})
    assert [p.split(":")[0] for p in found] == [
        "daemon 'app', key 'max_rss'",
        "daemon 'app', key 'max_lifetime'",
        "daemon 'app', key 'restart_at'",
        "daemon 'app', key 'ready'",
    ]
