"""Document numbers in State and Party notation, programme periods, and the metadata rules that
use them (node/documents/numbers.py, periods.py, metadata.py)."""
from __future__ import annotations

import datetime as dt
import unicodedata

import pytest

from lienthong.node.documents.coordination_rules import check_conclusion
from lienthong.node.documents.metadata import document_meta
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.numbers import NumberError, check_number, parse_number
from lienthong.node.documents.periods import Period, parse_period


@pytest.mark.parametrize(("text", "notation", "code", "issuer", "year"), [
    ("05/CT-UBND", "state", "CT", "UBND", None),
    ("12/2026/NQ-HĐND", "state", "NQ", "HĐND", 2026),
    ("45/UBND-VP", "state", None, "UBND-VP", None),
    ("12-NQ/TU", "party", "NQ", "TU", None),
    ("36-HD/VPTW", "party", "HD", "VPTW", None),
    ("123-CV/VPTU", "party", "CV", "VPTU", None),
])
def test_both_notations_parse(text: str, notation: str, code: str | None, issuer: str,
                              year: int | None) -> None:
    number = parse_number(text)
    assert (number.notation, number.type_code, number.issuer, number.year) == (
        notation, code, issuer, year)


@pytest.mark.parametrize("text", ["abc", "12", "NQ/TU", "12/NQ", "12-NQ", "12 NQ TU", ""])
def test_a_number_in_neither_notation_names_both_forms(text: str) -> None:
    with pytest.raises(NumberError) as caught:
        check_number(text, "resolution")
    assert "05/CT-UBND" in str(caught.value) and "12-NQ/TU" in str(caught.value)


def test_the_type_code_must_be_the_documents() -> None:
    assert check_number("05/CT-UBND", "directive") == "05/CT-UBND"
    with pytest.raises(NumberError, match=r"NQ \(resolution\).*directive.*CT"):
        check_number("05/NQ-UBND", "directive")
    with pytest.raises(NumberError, match="CT"):
        check_number("12-NQ/TU", "directive")
    assert check_number("45/UBND-VP", "letter") == "45/UBND-VP"
    assert check_number("12-KH/TU", "other") == "12-KH/TU"  # no code required for "other"


def test_d_and_dj_and_nfd_are_the_same_code() -> None:
    """QD = QĐ, and a number typed in decomposed Unicode is sent in NFC."""
    assert check_number("15/QD-UBND", "decision") == "15/QD-UBND"
    decomposed = unicodedata.normalize("NFD", "12-NQ/ĐUKHỐI")  # the Ố decomposes
    kept = check_number(decomposed, "resolution")
    assert kept == unicodedata.normalize("NFC", "12-NQ/ĐUKHỐI") and kept != decomposed


def test_an_office_may_require_its_own_notation() -> None:
    with pytest.raises(NumberError, match="party notation"):
        check_number("05/CT-UBND", "directive", notation="party")
    assert check_number("05-CT/TU", "directive", notation="party") == "05-CT/TU"


@pytest.mark.parametrize(("text", "kind", "first", "last"), [
    ("2027", "annual", "2027-01-01", "2027-12-31"),
    ("2027-Q1", "quarterly", "2027-01-01", "2027-03-31"),
    ("2027-q4", "quarterly", "2027-10-01", "2027-12-31"),
    ("2027-02", "monthly", "2027-02-01", "2027-02-28"),
    ("2027-W05", "weekly", "2027-02-01", "2027-02-07"),
    ("2026-W53", "weekly", "2026-12-28", "2027-01-03"),
])
def test_periods(text: str, kind: str, first: str, last: str) -> None:
    period = parse_period(text)
    assert (period.kind, str(period.first_day), str(period.last_day)) == (kind, first, last)
    assert parse_period(str(period)) == period
    assert period.next().previous() == period


@pytest.mark.parametrize("text", ["27", "2027-Q5", "2027-13", "2027-W54", "2027-W00", "Q1 2027",
                                  "2027/01", "năm 2027"])
def test_a_period_in_the_wrong_form_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="2027-Q1 .quarter."):
        parse_period(text)


def test_period_containing_crosses_years() -> None:
    assert Period("weekly", 2026, 53).next() == Period("weekly", 2027, 1)
    assert Period("quarterly", 2027, 1).previous().last_day == dt.date(2026, 12, 31)


def test_a_programme_must_name_its_period() -> None:
    with pytest.raises(MetadataError, match="period"):
        document_meta({"type": "chương trình"})
    with pytest.raises(MetadataError, match="not a period"):
        document_meta({"type": "chương trình", "period": "quý 1"})
    meta = document_meta({"type": "chương trình", "period": "2027-q1", "consolidated": True})
    assert meta.as_envelope_meta()["period"] == "2027-Q1"
    assert meta.as_envelope_meta()["consolidated"] is True


def test_a_bad_number_is_a_bad_number_refusal_unless_lenient() -> None:
    with pytest.raises(MetadataError) as caught:
        document_meta({"type": "chỉ thị", "number": "05/NQ-UBND"})
    assert caught.value.code == "bad-number"
    meta = document_meta({"type": "chỉ thị", "number": "05/NQ-UBND"}, lenient_numbers=True)
    assert meta.number == "05/NQ-UBND"


def test_programme_and_meeting_fields_belong_to_their_types() -> None:
    with pytest.raises(MetadataError, match="only a programme"):
        document_meta({"type": "báo cáo", "period": "2027"})
    with pytest.raises(MetadataError, match="only a conclusion"):
        document_meta({"type": "công văn", "concerned": ["hdnd"]})


def test_a_conclusion_goes_from_the_host_to_exactly_the_offices_concerned() -> None:
    meta = document_meta({"type": "kết luận", "number": "15-KL/TU", "meeting": "Giao ban quý I",
                          "meeting_date": "2027-03-30", "meeting_chair": "Bí thư Tỉnh ủy",
                          "meeting_host": "tinhuy", "concerned": ["HDND", "ubnd"]})
    assert meta.concerned == ("hdnd", "ubnd")
    check_conclusion(meta, own_name="tinhuy", recipients=["ubnd", "hdnd"])
    with pytest.raises(MetadataError, match="missing: ubnd"):
        check_conclusion(meta, own_name="tinhuy", recipients=["hdnd"])
    with pytest.raises(MetadataError, match="hosted by tinhuy"):
        check_conclusion(meta, own_name="hdnd", recipients=["ubnd", "hdnd"])
