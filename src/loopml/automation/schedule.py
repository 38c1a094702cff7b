"""Cron expressions with a time zone: :class:`CronSchedule` and its next firing time.

Five fields, as in crontab(5)::

    minute   hour    day of month   month              day of week
    0-59     0-23    1-31           1-12 or jan-dec    0-7 or sun-sat (0 and 7: Sunday)
    0        3       *              *                  mon-fri

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a list of
those (``1,15,30-40/5``). ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``
and ``@yearly`` (``@annually``) stand for the usual expressions. As in cron, when both the
day of month and the day of week are restricted, a day matching either one matches.

Times are wall-clock times in the schedule's zone (IANA name, default UTC). Across a
daylight-saving change: a wall-clock time that does not exist (the hour skipped in spring)
fires once, at the end of the gap (02:30 → 03:00), as Vixie cron does; a wall-clock time that
happens twice (the hour repeated in autumn) fires once, at its first occurrence.

Written here rather than taken from ``croniter``: that package was declared abandoned by its
author in 2025 before moving to a new home, and the five fields plus the two DST rules above
are all loopml needs.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loopml.errors import InvalidArgument

__all__ = ["CronSchedule", "parse_cron"]

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: (name, low, high, names) of the five fields.
_Spec = tuple[str, int, int, dict[str, int]]
_FIELDS: tuple[_Spec, ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
_EXAMPLE = "e.g. '0 3 * * *' (03:00 every day) or '*/15 * * * mon-fri'"
#: How far ahead a next time is searched for: a leap day can be 8 years away (2096 → 2104).
_HORIZON_YEARS = 9


def _number(text: str, spec: _Spec, expression: str) -> int:
    name, low, high, names = spec
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isdigit():
            raise InvalidArgument(f"cron expression {expression!r}: {text!r} is not a valid "
                                  f"{name}; use {low}-{high}"
                                  f"{' or a name such as ' + next(iter(names)) if names else ''}"
                                  f", {_EXAMPLE}")
        value = int(text)
    if not low <= value <= high:
        raise InvalidArgument(f"cron expression {expression!r}: {name} {value} is outside "
                              f"{low}-{high}; {_EXAMPLE}")
    return value


def _field(text: str, spec: _Spec,
           expression: str) -> frozenset[int]:
    name, low, high, _ = spec
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidArgument(f"cron expression {expression!r}: step {step_text!r} "
                                      f"in {part!r} must be a positive number; {_EXAMPLE}")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = _number(first, spec, expression), _number(last, spec, expression)
            if start > stop:
                raise InvalidArgument(f"cron expression {expression!r}: range {base!r} of the "
                                      f"{name} runs backwards; write it low-high")
        elif base:
            start = _number(base, spec, expression)
            stop = high if slash else start
        else:
            raise InvalidArgument(f"cron expression {expression!r}: empty {name} field part "
                                  f"in {text!r}; {_EXAMPLE}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression in a time zone; :meth:`next_after` gives its next time."""

    expression: str
    timezone: str = "UTC"
    minutes: frozenset[int] = field(default=frozenset(), repr=False)
    hours: frozenset[int] = field(default=frozenset(), repr=False)
    days: frozenset[int] = field(default=frozenset(), repr=False)
    months: frozenset[int] = field(default=frozenset(), repr=False)
    weekdays: frozenset[int] = field(default=frozenset(), repr=False)
    #: Whether the day-of-month / day-of-week field was restricted (not ``*``).
    days_restricted: bool = field(default=False, repr=False)
    weekdays_restricted: bool = field(default=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _day_matches(self, day: datetime) -> bool:
        in_days = day.day in self.days
        # datetime: Monday is 0; cron: Sunday is 0 (and 7).
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _next_wall_time(self, after: datetime) -> datetime | None:
        """The first naive wall-clock minute after ``after`` that the fields match."""
        moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = after.year + _HORIZON_YEARS
        while moment.year <= limit:
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (
                    moment.year, moment.month + 1)
                moment = datetime(year, month, 1)
            elif not self._day_matches(moment):
                moment = datetime(moment.year, moment.month, moment.day) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment
        return None

    def next_after(self, after: datetime) -> datetime:
        """The first time strictly after ``after`` (aware; naive means UTC) at which the
        schedule fires, as an aware UTC datetime."""
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        zone = self.zone
        wall = after.astimezone(zone).replace(tzinfo=None)
        while True:
            candidate = self._next_wall_time(wall)
            if candidate is None:
                raise InvalidArgument(f"cron expression {self.expression!r} never fires in "
                                      f"the {_HORIZON_YEARS} years after {after:%Y-%m-%d}; "
                                      "check its day and month fields")
            moment = _to_utc(candidate, zone)
            if moment > after:
                return moment
            wall = candidate

    def describe(self) -> str:
        return f"cron '{self.expression}' ({self.timezone})"


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time as UTC: its first occurrence when repeated; the end of the gap when
    skipped by a daylight-saving jump."""
    while not _exists(wall, zone):
        wall = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _load_zone(name: str, expression: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"cron expression {expression!r}: unknown time zone {name!r}; "
                              "use an IANA name such as UTC, Europe/Paris or America/New_York "
                              "(where the system has no zone database: pip install tzdata)"
                              ) from None


def parse_cron(expression: str, *, timezone: str = "UTC") -> CronSchedule:
    """Parse a five-field cron expression (or a ``@daily``-style macro) in ``timezone``."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidArgument(f"cron expression must be a non-empty string, got "
                              f"{expression!r}; {_EXAMPLE}")
    text = " ".join(expression.split())
    fields = _MACROS.get(text.lower(), text).split(" ")
    if len(fields) != 5:
        raise InvalidArgument(f"cron expression {expression!r} has {len(fields)} fields; it "
                              f"needs 5 (minute hour day-of-month month day-of-week), "
                              f"{_EXAMPLE}")
    _load_zone(timezone, expression)
    minutes, hours, days, months, weekdays = (
        _field(text_, spec, expression) for text_, spec in zip(fields, _FIELDS, strict=True))
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    schedule = CronSchedule(expression=text, timezone=timezone, minutes=minutes, hours=hours,
                            days=days, months=months, weekdays=weekdays,
                            days_restricted=fields[2] != "*",
                            weekdays_restricted=fields[4] != "*")
    _check_possible(schedule)
    return schedule


def _check_possible(schedule: CronSchedule) -> None:
    """Reject a day-of-month that no month in the expression has (``0 0 31 2 *``)."""
    if schedule.weekdays_restricted and schedule.days_restricted:
        return
    longest = max(calendar.monthrange(2024, m)[1] for m in schedule.months)
    if min(schedule.days) > longest:
        raise InvalidArgument(f"cron expression {schedule.expression!r} never fires: no month "
                              f"it names has day {min(schedule.days)}; fix the day of month")
