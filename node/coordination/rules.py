"""When each programme is due, from the configured rules (pure).

The regulation's defaults (``[coordination]``, config/schema.py): the programme for period P
is due

* annual 2027: 30 November of 2026 (``annual_due_day``/``annual_due_month``, previous year);
* quarterly 2027-Q2: the 20th of the last month of the quarter before (20 March);
* monthly 2027-02: the 25th of the month before (25 January);
* weekly 2027-W05: the Thursday of the week before (``weekly_due_weekday``).

A day beyond the month's end (31 in February) is the month's last day. A deadline that falls on
a day off is kept and flagged (``if_day_off = "keep"``), or moved to the working day before or
after.
"""
from __future__ import annotations

import calendar as month_calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from lienthong.config.schema import PROGRAMME_KINDS, WEEKDAYS, CoordinationSection
from lienthong.node.coordination.calendar import WorkingCalendar
from lienthong.node.documents.periods import Period, period_containing


def _day_in_month(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, month_calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class Deadline:
    """The day a period's programme is due, and why that day is not a working day (if not)."""

    period: Period
    due: dt.date
    day_off: str | None


class DeadlineRules:
    """The configured rules, turned into due dates for periods."""

    def __init__(self, section: CoordinationSection, calendar: WorkingCalendar) -> None:
        self.section = section
        self.calendar = calendar

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.section.kinds

    def rule_due(self, period: Period) -> dt.date:
        """The due day the rule gives, before any day-off shift."""
        s = self.section
        if period.kind == "annual":
            return _day_in_month(period.year - 1, s.annual_due_month, s.annual_due_day)
        if period.kind == "quarterly":
            last_month = period.previous().last_day
            return _day_in_month(last_month.year, last_month.month, s.quarterly_due_day)
        if period.kind == "monthly":
            before = period.previous().first_day
            return _day_in_month(before.year, before.month, s.monthly_due_day)
        monday_before = period.first_day - dt.timedelta(days=7)
        return monday_before + dt.timedelta(days=WEEKDAYS.index(s.weekly_due_weekday))

    def deadline(self, period: Period) -> Deadline:
        due = self.rule_due(period)
        day_off = self.calendar.day_off_reason(due)
        if day_off is not None and self.section.if_day_off != "keep":
            due = self.calendar.shift(due, self.section.if_day_off)
            day_off = None
        return Deadline(period, due, day_off)

    def deadlines_between(self, first: dt.date, last: dt.date,
                          kinds: tuple[str, ...] | None = None) -> Iterator[Deadline]:
        """Every configured period whose programme is due within [first, last], by due day."""
        found = []
        for kind in kinds or self.kinds:
            if kind not in PROGRAMME_KINDS or kind not in self.kinds:
                continue
            # A period is due before it starts (at most ~14 months before, for a year).
            period = period_containing(kind, first)
            while self.deadline(period).due >= first:
                period = period.previous()
            while True:
                deadline = self.deadline(period)
                if deadline.due > last:
                    break
                if deadline.due >= first:
                    found.append(deadline)
                period = period.next()
        yield from sorted(found, key=lambda d: (d.due, PROGRAMME_KINDS.index(d.period.kind)))
