"""Who owes which programme to whom, and the state of each obligation on a given day (pure).

Theory of operation
-------------------
An :class:`Obligation` is one office's programme for one period, owed to the consolidating
office by a :class:`~lienthong.node.coordination.rules.Deadline`. Its :class:`Fulfilment` is
what the store knows of the programme that answers it (sent and received times). On a given
local day :func:`assess` gives it exactly one state:

=============  ============================================================================
on-time        received (or, while no receipt is back, sent) on or before the due day
late           received after the due day
due            not received yet, the due day not passed: ``working_days_left`` says how many
               working days remain after today (0: due today); ``reminder`` is set when that
               is at most ``remind_working_days``
overdue        not received, the due day passed, the period not ended yet
missing        not received, and the period it was for has ended
=============  ============================================================================

The same states, with "completed" instead of "received", apply to documents that carry a
``due`` date (``assess_due``). Times are RFC 3339 UTC text; days are Vietnam's local days.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lienthong.node.coordination.calendar import WorkingCalendar
from lienthong.node.coordination.rules import Deadline
from lienthong.node.documents.programme_items import VIETNAM

STATES = ("on-time", "late", "due", "overdue", "missing")


def local_day(moment: str) -> dt.date:
    """The Vietnamese calendar day of an RFC 3339 time."""
    parsed = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed.astimezone(VIETNAM).date()


def happened_by(moment: str | None, today: dt.date) -> bool:
    """True when ``moment`` (RFC 3339) is on or before Vietnam's local day ``today``."""
    return moment is not None and local_day(moment) <= today


def local_today(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, VIETNAM).date()


@dataclass(frozen=True, slots=True)
class Obligation:
    office: str
    owed_to: str
    deadline: Deadline

    @property
    def kind(self) -> str:
        return self.deadline.period.kind

    @property
    def period(self) -> str:
        return str(self.deadline.period)


@dataclass(frozen=True, slots=True)
class Fulfilment:
    message_id: str
    name: str
    sent_at: str | None
    received_at: str | None

    @property
    def done_at(self) -> str | None:
        return self.received_at or self.sent_at

    def as_of(self, today: dt.date) -> Fulfilment | None:
        """What of it had happened by the end of ``today`` (``deadlines --on`` asks about a
        past day: a programme received since then must not make that day's answer)."""
        sent = self.sent_at if happened_by(self.sent_at, today) else None
        received = self.received_at if happened_by(self.received_at, today) else None
        if sent is None and received is None:
            return None
        return Fulfilment(self.message_id, self.name, sent, received)


@dataclass(frozen=True, slots=True)
class Assessment:
    state: str
    working_days_left: int | None = None
    reminder: bool = False


def _assess(due: dt.date, last_day: dt.date | None, done_at: str | None, today: dt.date,
            calendar: WorkingCalendar, remind: int) -> Assessment:
    if done_at is not None:
        return Assessment("on-time" if local_day(done_at) <= due else "late")
    if today <= due:
        left = calendar.working_days_after(today, due)
        return Assessment("due", left, left <= remind)
    if last_day is not None and today > last_day:
        return Assessment("missing")
    return Assessment("overdue")


def assess(obligation: Obligation, fulfilment: Fulfilment | None, today: dt.date,
           calendar: WorkingCalendar, *, remind_working_days: int) -> Assessment:
    """The obligation's state on ``today`` (the table in the module docstring)."""
    return _assess(obligation.deadline.due, obligation.deadline.period.last_day,
                   fulfilment.done_at if fulfilment else None, today, calendar,
                   remind_working_days)


def assess_due(due: dt.date, completed_at: str | None, today: dt.date,
               calendar: WorkingCalendar, *, remind_working_days: int) -> Assessment:
    """A document with a ``due`` date: completed by then or not (never "missing")."""
    return _assess(due, None, completed_at, today, calendar, remind_working_days)
