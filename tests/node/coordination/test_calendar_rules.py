"""The working-day calendar (Vietnam's holidays from the holidays package, plus configured days)
and the regulation's due days (node/coordination/calendar.py, rules.py)."""
from __future__ import annotations

import datetime as dt

from lienthong.config.schema import CoordinationSection
from lienthong.node.coordination.calendar import WorkingCalendar
from lienthong.node.coordination.rules import DeadlineRules
from lienthong.node.documents.periods import parse_period

D = dt.date.fromisoformat


def test_tet_and_hung_kings_are_days_off() -> None:
    calendar = WorkingCalendar()
    for day in ("2027-02-04", "2027-02-05", "2027-02-08", "2027-02-09", "2027-02-10",
                "2027-04-16"):
        assert not calendar.is_working_day(D(day)), day
    assert "Lunar New Year" in (calendar.day_off_reason(D("2027-02-08")) or "")
    assert "Hung Kings" in (calendar.day_off_reason(D("2027-04-16")) or "")
    assert calendar.is_working_day(D("2027-02-11"))
    assert calendar.day_off_reason(D("2027-02-13")) == "Saturday"
    # 3 Feb (Wed) to 12 Feb (Fri): only the 11th and 12th are worked.
    assert calendar.working_days_after(D("2027-02-03"), D("2027-02-12")) == 2


def test_announced_days_off_and_make_up_saturdays() -> None:
    calendar = WorkingCalendar.from_text(["2027-02-12"], ["2027-02-20"])
    assert not calendar.is_working_day(D("2027-02-12"))
    assert calendar.is_working_day(D("2027-02-20"))  # a Saturday worked
    # 11, 15-19, 20 (the make-up Saturday) and 22; not 12 (off) nor Sunday 21
    assert calendar.working_days_after(D("2027-02-10"), D("2027-02-22")) == 8
    assert calendar.add_working_days(D("2027-02-03"), 1) == D("2027-02-11")


def test_due_days_follow_the_configured_rules() -> None:
    rules = DeadlineRules(CoordinationSection(), WorkingCalendar())
    assert rules.deadline(parse_period("2027")).due == D("2026-11-30")
    assert rules.deadline(parse_period("2027-Q3")).due == D("2027-06-20")
    assert rules.deadline(parse_period("2027-03")).due == D("2027-02-25")
    assert rules.deadline(parse_period("2027-W07")).due == D("2027-02-11")  # Thursday before
    custom = DeadlineRules(CoordinationSection(monthly_due_day=31, weekly_due_weekday="friday",
                                               annual_due_day=15, annual_due_month=12),
                           WorkingCalendar())
    assert custom.deadline(parse_period("2027-03")).due == D("2027-02-28")  # end of February
    assert custom.deadline(parse_period("2027-W07")).due == D("2027-02-12")
    assert custom.deadline(parse_period("2028")).due == D("2027-12-15")


def test_a_deadline_on_a_day_off_is_flagged_or_moved() -> None:
    calendar = WorkingCalendar()
    week = parse_period("2027-W06")  # due Thursday 4 Feb 2027: Tết
    kept = DeadlineRules(CoordinationSection(), calendar).deadline(week)
    assert kept.due == D("2027-02-04") and "Lunar New Year" in (kept.day_off or "")
    earlier = DeadlineRules(CoordinationSection(if_day_off="earlier"), calendar).deadline(week)
    assert (earlier.due, earlier.day_off) == (D("2027-02-03"), None)
    later = DeadlineRules(CoordinationSection(if_day_off="later"), calendar).deadline(week)
    assert later.due == D("2027-02-11")


def test_deadlines_between_lists_every_kind_once_by_due_day() -> None:
    rules = DeadlineRules(CoordinationSection(), WorkingCalendar())
    found = [(str(d.period), str(d.due)) for d in rules.deadlines_between(D("2026-11-20"),
                                                                           D("2026-12-21"))]
    assert found == [
        ("2026-12", "2026-11-25"), ("2026-W49", "2026-11-26"), ("2027", "2026-11-30"),
        ("2026-W50", "2026-12-03"), ("2026-W51", "2026-12-10"), ("2026-W52", "2026-12-17"),
        ("2027-Q1", "2026-12-20")]
