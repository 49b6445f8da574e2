"""Programme periods (kỳ chương trình): the year, quarter, month or week a programme covers (pure).

A programme's sidecar names its period in one of four forms, and the form says the kind:

=========  ===========  ====================================
form       kind         example
=========  ===========  ====================================
``YYYY``       annual       ``2027``
``YYYY-Qn``    quarterly    ``2027-Q1``
``YYYY-MM``    monthly      ``2027-01``
``YYYY-Www``   weekly       ``2027-W05`` (ISO 8601 week, Monday first)
=========  ===========  ====================================

:func:`parse_period` turns the text into a :class:`Period` (or raises ``ValueError`` with a
sentence naming the forms); a period knows its first and last day and its neighbours.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

KINDS = ("annual", "quarterly", "monthly", "weekly")
FORMS_TEXT = ("2027 (year), 2027-Q1 (quarter), 2027-01 (month) or 2027-W05 (ISO week, "
              "Monday to Sunday)")

_ANNUAL = re.compile(r"(\d{4})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-[Ww](\d{2})")
_FIRST_YEAR, _LAST_YEAR = 2000, 2099


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One period: ``kind`` (annual, quarterly, monthly, weekly), ``year`` and ``number``
    (1 for a year; the quarter, month or ISO week number otherwise)."""

    kind: str
    year: int
    number: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"period kind {self.kind!r} is unknown")
        last = {"annual": 1, "quarterly": 4, "monthly": 12,
                "weekly": dt.date(self.year, 12, 28).isocalendar().week}[self.kind]
        if not 1 <= self.number <= last:
            raise ValueError(f"{self.kind} period number {self.number} is out of range 1-{last}")

    def __str__(self) -> str:
        if self.kind == "annual":
            return f"{self.year}"
        if self.kind == "quarterly":
            return f"{self.year}-Q{self.number}"
        if self.kind == "monthly":
            return f"{self.year}-{self.number:02d}"
        return f"{self.year}-W{self.number:02d}"

    @property
    def first_day(self) -> dt.date:
        if self.kind == "annual":
            return dt.date(self.year, 1, 1)
        if self.kind == "quarterly":
            return dt.date(self.year, 3 * self.number - 2, 1)
        if self.kind == "monthly":
            return dt.date(self.year, self.number, 1)
        return dt.date.fromisocalendar(self.year, self.number, 1)

    @property
    def last_day(self) -> dt.date:
        return self.next().first_day - dt.timedelta(days=1)

    def next(self) -> Period:
        return period_containing(self.kind, self._end_exclusive())

    def previous(self) -> Period:
        return period_containing(self.kind, self.first_day - dt.timedelta(days=1))

    def _end_exclusive(self) -> dt.date:
        if self.kind == "annual":
            return dt.date(self.year + 1, 1, 1)
        if self.kind == "quarterly":
            return (dt.date(self.year + 1, 1, 1) if self.number == 4
                    else dt.date(self.year, 3 * self.number + 1, 1))
        if self.kind == "monthly":
            return (dt.date(self.year + 1, 1, 1) if self.number == 12
                    else dt.date(self.year, self.number + 1, 1))
        return self.first_day + dt.timedelta(days=7)


def period_containing(kind: str, day: dt.date) -> Period:
    """The ``kind`` period that ``day`` falls in."""
    if kind == "annual":
        return Period(kind, day.year)
    if kind == "quarterly":
        return Period(kind, day.year, (day.month - 1) // 3 + 1)
    if kind == "monthly":
        return Period(kind, day.year, day.month)
    if kind == "weekly":
        iso = day.isocalendar()
        return Period(kind, iso.year, iso.week)
    raise ValueError(f"period kind {kind!r} is unknown")


def parse_period(text: str) -> Period:
    """The period ``text`` names; ``ValueError`` with a clerk-readable sentence otherwise."""
    cleaned = text.strip() if isinstance(text, str) else ""
    for pattern, kind in ((_ANNUAL, "annual"), (_QUARTER, "quarterly"), (_MONTH, "monthly"),
                          (_WEEK, "weekly")):
        found = pattern.fullmatch(cleaned)
        if found is None:
            continue
        year = int(found.group(1))
        number = int(found.group(2)) if kind != "annual" else 1
        if not _FIRST_YEAR <= year <= _LAST_YEAR:
            break
        try:
            return Period(kind, year, number)
        except ValueError:
            break
    raise ValueError(f"period: {text!r} is not a period; write {FORMS_TEXT}")
