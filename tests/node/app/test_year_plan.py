"""The demo year's plan (node/app/year_plan.py): deterministic, every obligation consistent
with the documents planned, and no office acting while its node is down."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict

from lienthong.node.app.year_plan import CONSOLIDATING, OWING, plan_year


def test_the_plan_is_the_same_for_the_same_year_and_differs_between_years() -> None:
    first, again, other = plan_year(2025), plan_year(2025), plan_year(2026)
    assert asdict(first) == asdict(again)
    assert [o.expected for o in first.obligations] != [o.expected for o in other.obligations]


def test_each_owing_office_has_an_annual_four_quarterly_and_twelve_monthly_obligations() -> None:
    plan = plan_year(2025)
    for office in OWING:
        kinds = [o.kind for o in plan.obligations if o.office == office]
        assert (kinds.count("annual"), kinds.count("quarterly"), kinds.count("monthly")) == \
            (1, 4, 12)
        expected = [o.expected for o in plan.obligations if o.office == office]
        assert expected.count("missing") == 1 and expected.count("late") == 2


def test_a_late_programme_is_sent_after_its_due_day_and_an_on_time_one_before() -> None:
    plan = plan_year(2025)
    by_key = {d.key: d for d in plan.documents}
    for obligation in plan.obligations:
        if obligation.expected == "missing":
            assert obligation.key is None
            continue
        sent = by_key[obligation.key]
        assert sent.sender == obligation.office and CONSOLIDATING in sent.recipients
        assert (sent.day > obligation.due) == (obligation.expected == "late"), obligation


def test_a_plan_until_a_day_holds_nothing_after_it() -> None:
    plan = plan_year(2025, until=dt.date(2025, 6, 30))
    assert plan.documents and max(d.day for d in plan.documents) <= "2025-06-30"
    assert all(a.day <= "2025-06-30" for a in plan.actions)


def test_no_office_sends_or_acts_during_its_own_outage() -> None:
    plan = plan_year(2025)
    assert {o.office for o in plan.outages} == {"ubnd", "hdnd"}
    for outage in plan.outages:
        assert outage.start < outage.end
        assert not [d for d in plan.documents if d.sender == outage.office
                    and outage.holds(d.day)]
        assert not [a for a in plan.actions if a.office == outage.office
                    and outage.holds(a.day)]
