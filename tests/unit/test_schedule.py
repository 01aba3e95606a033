"""Jobs' schedule arithmetic (``engine.decide.schedule``) against an injected wall clock: minutes,
uWSGI's ``-N`` fields, DST changes (zoneinfo) and wall-clock steps (docs/events.md, "Jobs")."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from attachdaemon_core.declarations import parse_declarations
from attachdaemon_core.engine.decide.schedule import Schedule, ScheduleError, delay_until, on_timer
from attachdaemon_core.spec.model import ConfigError
from attachdaemon_core.spec.uwsgi_cron import CronLineError, cron_fields, uwsgi_schedule

pytestmark = pytest.mark.unit

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")  # DST: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: object, *fields: int, fold: int = 0) -> float:
    return datetime(*fields, tzinfo=tz, fold=fold).timestamp()  # type: ignore[arg-type, misc]


def runs(expr: str, tz: object, start: float, n: int) -> list[str]:
    """The next ``n`` runs after ``start``, as local times with their UTC offset."""
    schedule = Schedule(expr, tz)  # type: ignore[arg-type]
    out, wall = [], start
    for _ in range(n):
        wall = schedule.next_after(wall)
        out.append(datetime.fromtimestamp(wall, tz).strftime("%m-%d %H:%M:%S%z"))  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------- plain arithmetic
def test_every_five_minutes_is_strictly_after_now() -> None:
    assert runs("*/5 * * * *", UTC, at(UTC, 2026, 1, 1, 10, 5), 3) == [
        "01-01 10:10:00+0000",
        "01-01 10:15:00+0000",
        "01-01 10:20:00+0000",
    ]
    assert runs("*/5 * * * *", UTC, at(UTC, 2026, 1, 1, 10, 4, 59) + 0.5, 1) == ["01-01 10:05:00+0000"]


def test_six_fields_count_seconds() -> None:
    assert runs("*/2 * * * * *", UTC, at(UTC, 2026, 1, 1, 10, 0, 0), 3) == [
        "01-01 10:00:02+0000",
        "01-01 10:00:04+0000",
        "01-01 10:00:06+0000",
    ]


def test_the_time_zone_moves_a_daily_run() -> None:
    start = at(UTC, 2026, 1, 1, 0, 0)
    assert runs("30 2 * * *", NEW_YORK, start, 1) == ["01-01 02:30:00-0500"]
    assert (
        Schedule("30 2 * * *", NEW_YORK).next_after(start) - Schedule("30 2 * * *", UTC).next_after(start)
        == 5 * 3600
    )


def test_a_bad_or_impossible_expression_is_refused() -> None:
    with pytest.raises(ScheduleError):
        Schedule("61 * * * *", UTC)
    with pytest.raises(ScheduleError):
        Schedule("0 0 31 2 *", UTC)  # February 31st


# ---------------------------------------------------------------------- DST
def test_spring_forward_a_fixed_time_in_the_gap_runs_when_the_gap_ends() -> None:
    # 02:30 does not exist in Paris on 2026-03-29: the run is at 03:00 (the gap's end), once.
    assert runs("30 2 * * *", PARIS, at(PARIS, 2026, 3, 28, 12, 0), 3) == [
        "03-29 03:00:00+0200",
        "03-30 02:30:00+0200",
        "03-31 02:30:00+0200",
    ]


def test_fall_back_a_fixed_time_in_the_repeated_hour_runs_once() -> None:
    # 02:30 happens twice in Paris on 2026-10-25: it runs at the first, not again an hour later.
    assert runs("30 2 * * *", PARIS, at(PARIS, 2026, 10, 24, 12, 0), 2) == [
        "10-25 02:30:00+0200",
        "10-26 02:30:00+0100",
    ]


def test_an_interval_keeps_real_time_across_both_changes() -> None:
    # Every 30 minutes is every 30 real minutes: the missing hour has no instants, the repeated
    # hour has two sets of instants (each run is 30 minutes after the previous one).
    spring = runs("*/30 * * * *", PARIS, at(PARIS, 2026, 3, 29, 1, 15), 3)
    assert spring == ["03-29 01:30:00+0100", "03-29 03:00:00+0200", "03-29 03:30:00+0200"]
    fall_start = at(PARIS, 2026, 10, 25, 2, 15)
    fall = [Schedule("*/30 * * * *", PARIS).next_after(fall_start)]
    for _ in range(4):
        fall.append(Schedule("*/30 * * * *", PARIS).next_after(fall[-1]))
    assert [b - a for a, b in itertools.pairwise(fall)] == [1800.0] * 4


# ---------------------------------------------------------------------- uWSGI's fields
@pytest.mark.parametrize(
    ("fields", "expr"),
    [
        ((-1, -1, -1, -1, -1), "* * * * *"),
        ((59, 2, -1, -1, -1), "59 2 * * *"),  # uwsgi-docs Cron.rst
        ((9, 11, -1, -1, 2), "9 11 * * 2"),  # uwsgi-docs Cron.rst
        ((0, -2, -1, -1, -1), "0 */2 * * *"),  # "every two hours", uwsgi-docs Cron.rst
        ((-10, -1, -1, -1, -1), "*/10 * * * *"),
        ((0, 0, -10, -1, -1), "0 0 10,20,30 * *"),  # mday % 10 == 0
        ((0, 0, 1, -3, -1), "0 0 1 3,6,9,12 *"),  # months from 1: tm_mon + 1 (core/cron.c)
        ((0, 0, -1, -1, -2), "0 0 * * */2"),
        ((0, 0, -1, -1, 7), "0 0 * * 7"),
    ],
)
def test_uwsgi_fields_become_a_cron_expression(fields: tuple[int, int, int, int, int], expr: str) -> None:
    assert uwsgi_schedule(*fields) == expr


def uwsgi_matches(t: datetime, minute: int, hour: int, day: int, month: int, week: int) -> bool:
    """uWSGI's own rule (core/utils.c, uwsgi_cron_task_needs_execution), as the oracle."""
    wday = (t.weekday() + 1) % 7
    want = [minute, hour, day, month, 0 if week == 7 else week]
    have = [t.minute, t.hour, t.day, t.month, wday]
    ok = [h % -w == 0 if w < 0 else h == w for w, h in zip(want, have, strict=True)]
    if day >= 0 and week >= 0:
        return ok[0] and ok[1] and ok[3] and (ok[2] or ok[4])
    return all(ok)


@pytest.mark.parametrize(
    "fields",
    [(0, -2, -1, -1, -1), (-15, 3, -1, -1, -1), (30, 4, -7, -2, -1), (0, 0, 13, -1, 5), (5, -3, -1, -1, -3)],
)
def test_uwsgi_fields_match_what_uwsgi_matches_over_a_year(fields: tuple[int, int, int, int, int]) -> None:
    schedule = Schedule(uwsgi_schedule(*fields), UTC)
    wall = at(UTC, 2026, 1, 1, 0, 0) - 1
    ours = set()
    while (wall := schedule.next_after(wall)) < at(UTC, 2027, 1, 1, 0, 0):
        ours.add(wall)
    theirs = set()
    t = at(UTC, 2026, 1, 1, 0, 0)
    while t < at(UTC, 2027, 1, 1, 0, 0):
        if uwsgi_matches(datetime.fromtimestamp(t, UTC), *fields):
            theirs.add(t)
        t += 60
    assert ours == theirs and ours


def test_uwsgi_fields_that_never_match_or_cannot_be_said_are_refused() -> None:
    with pytest.raises(CronLineError, match="never matches"):
        uwsgi_schedule(0, 0, -1, -13, -1)
    with pytest.raises(CronLineError, match="out of range"):
        uwsgi_schedule(60, 0, -1, -1, -1)
    with pytest.raises(CronLineError, match="both match"):
        uwsgi_schedule(0, 0, -2, -1, 3)


def test_cron_lines_become_job_declarations() -> None:
    decl, program = cron_fields("cron", "59 2 -1 -1 -1 /usr/bin/backup_my_home --recursive")
    assert (decl, program) == (
        {"schedule": "59 2 * * *", "command": ["/usr/bin/backup_my_home", "--recursive"]},
        "/usr/bin/backup_my_home",
    )
    decl, _ = cron_fields("unique-legion-cron", "mycluster 0 -2 -1 -1 -1 backup.sh", cron_harakiri=10)
    assert decl == {
        "leader": {"lock": "mycluster"},
        "schedule": "0 */2 * * *",
        "unique": True,
        "timeout": 10,
        "command": ["backup.sh"],
    }
    decl, _ = cron_fields("cron2", "minute=-2,unique=1 sleep 130")  # uwsgi-docs Cron.rst
    assert decl == {"schedule": "*/2 * * * *", "unique": True, "command": ["sleep", "130"]}
    decl, _ = cron_fields("cron2", "harakiri=0 my command", cron_harakiri=10)  # no timeout
    assert decl["timeout"] is None
    decl, _ = cron_fields("cron2", "minute=-10,legion=mycluster my command")
    assert decl["leader"] == {"lock": "mycluster"} and decl["schedule"] == "*/10 * * * *"
    decl, _ = cron_fields("cron2", "my command")  # every minute
    assert decl["schedule"] == "* * * * *"
    decl, _ = cron_fields("cron", "0 3 -1 -1 -1 cd /srv && ./manage.py clearsessions > /dev/null")
    assert decl["command"] == ["/bin/sh", "-c", "cd /srv && ./manage.py clearsessions > /dev/null"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("cron", "0 2 * * * backup", "five numbers"),
        ("cron", "0 2 -1 -1", "five numbers"),
        ("legion-cron", "0 2 -1 -1 -1", "five numbers"),
        ("cron2", "minute=1, hour=2 cmd", "unknown item"),
        ("cron2", "minute=x cmd", "whole number"),
        ("cron2", "minute=5", "needs a command"),
    ],
)
def test_bad_cron_lines_say_what_is_wrong(option: str, value: str, message: str) -> None:
    with pytest.raises(CronLineError, match=message):
        cron_fields(option, value)


# ---------------------------------------------------------------------- the timer fires
EVERY_MINUTE = Schedule("* * * * *", UTC)
T0 = at(UTC, 2026, 6, 1, 12, 0)


def test_on_time_one_run_then_the_next_slot() -> None:
    due = on_timer(EVERY_MINUTE, T0, T0 + 0.01)
    assert (due.run, due.missed, due.next_slot) == (True, 0, T0 + 60)


def test_a_backward_step_waits_for_the_same_slot_so_nothing_runs_twice() -> None:
    # The slot at T0 ran; the next is T0+60. The wall clock is stepped back 10 minutes: when
    # the monotonic timer fires, the wall clock says T0+60-600. No run; the job waits for T0+60.
    due = on_timer(EVERY_MINUTE, T0 + 60, T0 + 60 - 600)
    assert (due.run, due.missed, due.next_slot) == (False, 0, T0 + 60)
    assert delay_until(due.next_slot, T0 + 60 - 600) == 600


def test_a_forward_step_runs_once_and_counts_the_slots_it_jumped() -> None:
    # Stepped forward 10 minutes past the slot at T0+60: one run now, 10 missed, next at T0+720.
    due = on_timer(EVERY_MINUTE, T0 + 60, T0 + 60 + 600 + 5)
    assert (due.run, due.missed, due.next_slot) == (True, 10, T0 + 720)


def test_a_timer_a_little_early_still_runs() -> None:
    due = on_timer(EVERY_MINUTE, T0, T0 - 0.2)
    assert due.run and due.next_slot == T0 + 60


def test_spring_forward_through_a_fixed_time_is_one_run_not_a_miss() -> None:
    daily = Schedule("30 2 * * *", PARIS)
    slot = daily.next_after(at(PARIS, 2026, 3, 28, 12, 0))  # 03:00, the gap's end
    due = on_timer(daily, slot, slot + 1)
    assert due.run and due.missed == 0
    assert datetime.fromtimestamp(due.next_slot, PARIS).strftime("%d %H:%M") == "30 02:30"


# ---------------------------------------------------------------------- real lines, whole lists
CLA_BACKEND = [  # ministryofjustice/cla_backend, docker/cla_backend.ini (found with the search tool)
    "cron2=minute=0,hour=5,unique=1 python /home/app/django/manage.py housekeeping",
    "cron2=minute=15,hour=2,unique=1,harakiri=30 python /home/app/django/manage.py"
    " monitor_missing_outcome_codes",
    "cron2=minute=-15,unique=1,harakiri=30 python /home/app/django/manage.py monitor_multiple_outcome_codes",
]


def test_real_cron2_lines_become_jobs() -> None:
    specs = parse_declarations(CLA_BACKEND)
    assert [(s.name, s.schedule, s.unique, s.timeout) for s in specs] == [
        ("python", "0 5 * * *", True, None),
        ("python-2", "15 2 * * *", True, 30.0),
        ("python-3", "*/15 * * * *", True, 30.0),
    ]
    assert specs[0].command == ("python", "/home/app/django/manage.py", "housekeeping")


def test_cron_harakiri_is_the_default_timeout_of_its_lists_cron_lines() -> None:
    # uwsgi-docs Cron.rst: "cron-harakiri = 10" with "cron2 = harakiri=0 my command" (no limit)
    specs = parse_declarations(
        ["cron-harakiri = 10", "cron2 = harakiri=0 sleep 30", "cron2 = sleep 31", "attach-daemon = memcached"]
    )
    assert [(s.name, s.timeout, s.schedule) for s in specs] == [
        ("sleep", None, "* * * * *"),
        ("sleep-2", 10.0, "* * * * *"),
        ("memcached", None, None),
    ]
    with pytest.raises(ConfigError, match="cron-harakiri is not a job"):
        parse_declarations({"h": "cron-harakiri = 10"})


def test_legion_cron_lines_lead_on_the_host_settings_backend() -> None:
    (spec,) = parse_declarations(
        ["unique-cron-legion = mycluster 0 -2 -1 -1 -1 /usr/bin/backup_my_home --recursive"],
        leader_backend="redis://127.0.0.1:6379/0",
    )
    assert spec.leader is not None and (spec.leader.lock, spec.leader.backend) == (
        "mycluster",
        "redis://127.0.0.1:6379/0",
    )
    assert spec.unique and spec.schedule == "0 */2 * * *"
