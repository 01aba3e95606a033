"""Schedule arithmetic for jobs (docs/events.md, "Jobs"): the next run after a wall-clock instant
in a time zone, and what to do when the timer for a run fires. Pure: the wall clock and the time
zone are passed in, so tests replay DST changes and clock steps without waiting.

The cron expression is evaluated by ``cronsim`` (the ``cron`` extra), which follows Debian cron
across DST changes: a schedule whose minute and hour fields are both fixed is in wall-clock
time (a time a change skips runs when the gap ends, a time it repeats runs once), a schedule
with ``*`` in either field keeps its interval in real time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import tzinfo

MAX_MISSED_COUNTED = 10_000  # a jump of years: counting stops here (the run happens anyway)
EARLY = 0.5  # a timer that fires up to this early (the loop's rounding) runs the job


class ScheduleError(ValueError):
    """The expression is not a valid cron schedule, or never matches."""


class Schedule:
    """A cron expression (5 fields, or 6 with seconds first) in a time zone."""

    __slots__ = ("expr", "tz")

    def __init__(self, expr: str, tz: tzinfo) -> None:
        self.expr = expr
        self.tz = tz
        self.next_after(0.0)  # raises ScheduleError for a bad or never-matching expression

    def next_after(self, wall: float) -> float:
        """The first run strictly after ``wall`` (seconds since the epoch), as seconds since the epoch."""
        from datetime import datetime  # (not at import: the supervisor's boot without jobs)

        from cronsim import CronSim, CronSimError

        start = datetime.fromtimestamp(int(wall), self.tz)
        try:
            return next(CronSim(self.expr, start)).timestamp()
        except CronSimError as exc:
            raise ScheduleError(str(exc)) from None
        except StopIteration:
            raise ScheduleError("it never matches a date") from None


class Due:
    """What to do when the job's timer fires: ``run`` it now or not, the runs ``missed`` (slots
    passed by a forward jump, run once now instead of each), and the slot to wait for next."""

    __slots__ = ("missed", "next_slot", "run")

    def __init__(self, run: bool, missed: int, next_slot: float) -> None:
        self.run = run
        self.missed = missed
        self.next_slot = next_slot

    def __repr__(self) -> str:
        return f"Due(run={self.run}, missed={self.missed}, next_slot={self.next_slot})"


def on_timer(schedule: Schedule, slot: float, wall: float) -> Due:
    """The timer for ``slot`` fired at wall-clock time ``wall``.

    - Before the slot (the wall clock was stepped back, or the timer is early): no run; wait for
      the same slot again, so a slot that already ran is never run twice.
    - At or after it: one run now. Slots that also passed (the wall clock was stepped forward,
      or the machine slept) are counted in ``missed`` and not run each; the next slot is the
      first after ``wall``.
    """
    if wall < slot - EARLY:
        return Due(False, 0, slot)
    following = schedule.next_after(slot)
    missed = 0
    while following <= wall and missed < MAX_MISSED_COUNTED:
        missed += 1
        following = schedule.next_after(following)
    if following <= wall:
        following = schedule.next_after(wall)
    return Due(True, missed, following)


def delay_until(slot: float, wall: float) -> float:
    """How long the loop sleeps (on the monotonic clock) for ``slot`` seen at wall time ``wall``."""
    return max(0.0, slot - wall)
