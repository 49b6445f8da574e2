"""``[coordination]`` and the number settings of ``[documents]``: the regulation's defaults, and
clerk-readable errors for a wrong value."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.config.loader import parse_config
from lienthong.config.schema import ConfigError, CoordinationSection

BASE = {"config_version": 1, "node": {"name": "hdnd", "listen": "127.0.0.1:7701"}}


def parse(**sections: object):  # type: ignore[no-untyped-def]
    return parse_config(dict(BASE, **sections), home=Path("/srv/h"),
                        source=Path("/srv/h/lienthong.toml"))


def test_defaults_are_the_regulations() -> None:
    config = parse()
    assert config.coordination == CoordinationSection()
    c = config.coordination
    assert (c.consolidating_office, c.annual_due_day, c.annual_due_month, c.quarterly_due_day,
            c.monthly_due_day, c.weekly_due_weekday, c.remind_working_days) == (
        "tinhuy", 30, 11, 20, 25, "thursday", 3)
    assert (config.documents.number_notation, config.documents.lenient_numbers) == ("any", False)


def test_settings_are_read() -> None:
    import datetime as dt
    config = parse(coordination={"kinds": ["monthly", "annual"], "if_day_off": "earlier",
                                 "days_off": [dt.date(2027, 2, 12)],
                                 "working_days": ["2027-02-20"], "since": dt.date(2026, 11, 1)},
                   documents={"number_notation": "state", "lenient_numbers": True})
    c = config.coordination
    assert (c.kinds, c.if_day_off, c.days_off, c.working_days, c.since) == (
        ("annual", "monthly"), "earlier", ("2027-02-12",), ("2027-02-20",), "2026-11-01")
    assert config.documents.number_notation == "state"


@pytest.mark.parametrize(("section", "words"), [
    ({"weekly_due_weekday": "thu 5"}, "weekly_due_weekday: expected one of monday"),
    ({"monthly_due_day": 32}, "monthly_due_day: expected a day of the month"),
    ({"annual_due_day": 31, "annual_due_month": 11}, "do not make a date"),
    ({"kinds": ["yearly"]}, "kinds: expected a list of annual"),
    ({"days_off": ["12/02/2027"]}, "expected a date like 2027-02-08"),
    ({"days_off": ["2027-02-20"], "working_days": ["2027-02-20"]}, "both in days_off"),
    ({"remind": 3}, "unknown key 'remind'"),
    ({"consolidating_office": "Tỉnh ủy"}, "consolidating_office: expected a short name"),
])
def test_wrong_values_name_the_key_and_what_is_expected(section: dict[str, object],
                                                         words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(coordination=section)
    assert words in str(caught.value) and "[coordination]" in str(caught.value)
