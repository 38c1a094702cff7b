"""Cron expressions with a time zone: fields, macros, day-of-month/day-of-week, DST gaps and
repeated hours, and the errors of bad expressions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from loopml.automation.schedule import parse_cron
from loopml.errors import InvalidArgument

PARIS = ZoneInfo("Europe/Paris")


def _next(expression: str, after: datetime, timezone: str = "UTC", count: int = 1) -> list[str]:
    schedule = parse_cron(expression, timezone=timezone)
    zone = ZoneInfo(timezone)
    found = []
    for _ in range(count):
        after = schedule.next_after(after)
        found.append(after.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"))
    return found


def test_fields_steps_ranges_lists_and_names() -> None:
    start = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)  # a Wednesday
    assert _next("*/20 * * * *", start, count=3) == [
        "2025-01-01 00:20 UTC", "2025-01-01 00:40 UTC", "2025-01-01 01:00 UTC"]
    assert _next("0 9-17/4 * * *", start, count=3) == [
        "2025-01-01 09:00 UTC", "2025-01-01 13:00 UTC", "2025-01-01 17:00 UTC"]
    assert _next("30 8 * * mon-fri", datetime(2025, 1, 3, 9, 0, tzinfo=UTC), count=2) == [
        "2025-01-06 08:30 UTC", "2025-01-07 08:30 UTC"]  # Friday 09:00 -> Monday
    assert _next("0 0 1 jan,jul *", start, count=2) == [
        "2025-07-01 00:00 UTC", "2026-01-01 00:00 UTC"]
    assert _next("0 12 * * 7", start) == ["2025-01-05 12:00 UTC"]  # 7 is Sunday too
    assert _next("@daily", start) == ["2025-01-02 00:00 UTC"]
    assert _next("@hourly", start) == ["2025-01-01 01:00 UTC"]


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    start = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    # the 13th, or any Friday (cron's OR rule)
    assert _next("0 0 13 * fri", start, count=3) == [
        "2025-01-03 00:00 UTC", "2025-01-10 00:00 UTC", "2025-01-13 00:00 UTC"]


def test_leap_day_and_strictly_after() -> None:
    assert _next("0 0 29 2 *", datetime(2025, 3, 1, tzinfo=UTC)) == ["2028-02-29 00:00 UTC"]
    exact = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
    assert _next("0 3 * * *", exact) == ["2025-01-02 03:00 UTC"]


def test_time_zone_and_daylight_saving_gap() -> None:
    # Europe/Paris jumps from 02:00 to 03:00 on 2025-03-30: 02:30 does not exist that day
    before = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)
    assert _next("30 2 * * *", before, "Europe/Paris", count=3) == [
        "2025-03-30 03:00 CEST", "2025-03-31 02:30 CEST", "2025-04-01 02:30 CEST"]
    # every quarter of the skipped hour fires once, at the end of the gap
    assert _next("*/15 2 * * *", before, "Europe/Paris", count=2) == [
        "2025-03-30 03:00 CEST", "2025-03-31 02:00 CEST"]
    # 03:00 local is 01:00 UTC in summer, 02:00 UTC in winter
    utc = parse_cron("0 3 * * *", timezone="Europe/Paris").next_after(before)
    assert utc == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def test_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    # Europe/Paris goes back from 03:00 CEST to 02:00 CET on 2025-10-26: 02:30 happens twice
    before = datetime(2025, 10, 25, 12, 0, tzinfo=UTC)
    schedule = parse_cron("30 2 * * *", timezone="Europe/Paris")
    first = schedule.next_after(before)
    assert first == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = schedule.next_after(first)
    assert second.astimezone(PARIS).strftime("%m-%d %H:%M %Z") == "10-27 02:30 CET"
    # an hourly schedule does not repeat 02:00 in the second (CET) pass
    hourly = _next("0 * * * *", datetime(2025, 10, 25, 23, 30, tzinfo=UTC), "Europe/Paris",
                   count=4)
    assert hourly == ["2025-10-26 02:00 CEST", "2025-10-26 03:00 CET", "2025-10-26 04:00 CET",
                      "2025-10-26 05:00 CET"]


def test_new_york_spring_forward() -> None:
    before = datetime(2025, 3, 8, 12, 0, tzinfo=UTC)
    assert _next("30 2 * * *", before, "America/New_York", count=2) == [
        "2025-03-09 03:00 EDT", "2025-03-10 02:30 EDT"]


@pytest.mark.parametrize(("expression", "match"), [
    ("0 3 * *", "has 4 fields; it needs 5"),
    ("61 * * * *", "minute 61 is outside 0-59"),
    ("0 25 * * *", "hour 25 is outside 0-23"),
    ("0 0 * foo *", "'foo' is not a valid month"),
    ("*/0 * * * *", "step '0'"),
    ("0 0 5-1 * *", "runs backwards"),
    ("0 0 31 2 *", "never fires"),
    ("", "non-empty"),
])
def test_bad_expressions_say_what_and_how(expression: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_cron(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(InvalidArgument, match="unknown time zone 'Mars/Olympus'.*IANA"):
        parse_cron("0 3 * * *", timezone="Mars/Olympus")
