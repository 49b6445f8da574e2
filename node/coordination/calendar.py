"""Which days are working days in Vietnam: weekends, public holidays, announced changes (pure).

The public holidays, the lunar ones included (Tết, the Hùng Kings' day) and the substitutions
the government has already announced, come from the ``holidays`` package, which is maintained
year by year. On top of it an office configures (``[coordination] days_off`` and
``working_days``) what the government announces later: extra days off, and the Saturdays that
are worked to make up for them.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import holidays

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@lru_cache(maxsize=8)
def _vietnam(year: int) -> holidays.HolidayBase:
    # Imported at the first date asked, not by every node at start: 3.6 MiB of each node's
    # memory (docs/benchmarks.md History 46).
    import holidays

    return holidays.country_holidays("VN", years=[year])


class WorkingCalendar:
    """Working days: Monday to Friday except public holidays, changed by the configuration."""

    def __init__(self, *, days_off: Iterable[dt.date] = (),
                 working_days: Iterable[dt.date] = ()) -> None:
        self._days_off = frozenset(days_off)
        self._working = frozenset(working_days)
        if self._days_off & self._working:
            raise ValueError("a day cannot be both a day off and a working day")

    @classmethod
    def from_text(cls, days_off: Iterable[str], working_days: Iterable[str]) -> WorkingCalendar:
        return cls(days_off=[dt.date.fromisoformat(d) for d in days_off],
                   working_days=[dt.date.fromisoformat(d) for d in working_days])

    def day_off_reason(self, day: dt.date) -> str | None:
        """Why ``day`` is not a working day (holiday name, "Saturday", ...), or None."""
        if day in self._working:
            return None
        if day in self._days_off:
            return "day off announced by the government (configured)"
        calendar = _vietnam(day.year)
        name = calendar.get(day)
        if name:
            return str(name)
        if calendar.is_working_day(day):
            return None
        return _WEEKDAY_NAMES[day.weekday()]

    def is_working_day(self, day: dt.date) -> bool:
        return self.day_off_reason(day) is None

    def working_days_after(self, start: dt.date, end: dt.date) -> int:
        """Working days ``d`` with start < d <= end (0 when end <= start)."""
        count, day = 0, start + dt.timedelta(days=1)
        while day <= end:
            count += self.is_working_day(day)
            day += dt.timedelta(days=1)
        return count

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The ``days``-th working day after ``start`` (``start`` itself for 0)."""
        day = start
        while days > 0:
            day += dt.timedelta(days=1)
            days -= self.is_working_day(day)
        return day

    def shift(self, day: dt.date, direction: str) -> dt.date:
        """``day`` if it is a working day; else the nearest one ``earlier`` or ``later``."""
        step = dt.timedelta(days=-1 if direction == "earlier" else 1)
        while not self.is_working_day(day):
            day += step
        return day
