"""Periods read as offices write them: "Quý I/2027" in Vietnamese, "Q1 2027" in English."""
from __future__ import annotations

import pytest

from lienthong.node.language.names import period_phrase, show_period
from lienthong.node.language.text import Phrase


@pytest.mark.parametrize(("code", "vi", "en"), [
    ("2027", "Năm 2027", "Year 2027"),
    ("2027-Q1", "Quý I/2027", "Q1 2027"),
    ("2027-Q4", "Quý IV/2027", "Q4 2027"),
    ("2027-01", "Tháng 01/2027", "January 2027"),
    ("2027-12", "Tháng 12/2027", "December 2027"),
    ("2027-W05", "Tuần 05/2027", "Week 05 of 2027"),
    ("2026-W53", "Tuần 53/2026", "Week 53 of 2026"),
    ("2026-11-05", "05/11/2026", "05/11/2026"),  # a reconciliation's day
])
def test_every_kind_in_both_languages(code: str, vi: str, en: str) -> None:
    assert show_period(code, "vi") == vi
    assert show_period(code, "en") == en


@pytest.mark.parametrize("bad", ["2027-13", "2027-Q5", "2027-W54", "27", "Q1", "",
                                 "<b>2027</b>", "2027-02-30", "2027-1"])
def test_a_value_that_is_not_a_period_is_shown_as_it_is(bad: str) -> None:
    assert show_period(bad, "vi") == bad
    assert show_period(bad, "en") == bad


def test_none_is_empty_and_an_unknown_language_is_vietnamese() -> None:
    assert show_period(None, "vi") == ""
    assert show_period("2027-Q2", "fr") == "Quý II/2027"


def test_a_sentence_carrying_a_period_is_said_in_its_readers_language() -> None:
    """A status warning is made once and read in either language (it travels as JSON)."""
    sentence = Phrase("The {what} for {period} from {office} to {owed_to} is overdue: it was "
                      "due {due}.", what=Phrase("quarterly programme"),
                      period=period_phrase("2027-Q3"), office="hdnd", owed_to="tinhuy",
                      due="10/07/2027")
    again = Phrase.from_json(sentence.as_json())
    assert "Quý III/2027" in again.in_language("vi")
    assert "Q3 2027" in again.in_language("en") and "Q3 2027" in str(again)
