"""edXML parsed and built (pure): every field of the list survives a round trip, NFD text is
read as NFC, the number splits and joins, and the header maps onto lienthong's metadata."""
from __future__ import annotations

import unicodedata

import pytest

from lienthong.config.schema import DEFAULT_DOCUMENT_TYPES
from lienthong.node.edxml.build import build_document, build_status
from lienthong.node.edxml.intake import document_meta_for
from lienthong.node.edxml.limits import EdxmlError
from lienthong.node.edxml.mapping import join_number, sidecar_fields, split_number
from lienthong.node.edxml.message import ResponseFor, StatusMessage
from lienthong.node.edxml.parse import parse_message
from tests.node.edxml.samples import OFFICES, TINHUY, UBND, full_document, replacement


def test_every_field_survives_build_then_parse() -> None:
    """The built bytes parse back to the very values, every header field and attachment."""
    message = full_document()
    data = build_document(message)
    assert parse_message(data) == message
    assert build_document(parse_message(data)) == data  # deterministic


def test_nfd_text_is_read_as_nfc() -> None:
    """A system writing decomposed Vietnamese is read as the same (NFC) text."""
    parsed = parse_message(build_document(full_document(decomposed=True)))
    assert parsed.header == full_document().header  # type: ignore[union-attr]
    assert unicodedata.is_normalized("NFC", parsed.header.subject or "")  # type: ignore[union-attr]


def test_replacement_keeps_its_marker() -> None:
    """BussinessDocType 3 and the replaced DocumentId come back as written."""
    message = replacement("000.00.01.H41,2026/11/20,12-NQ/TU")
    parsed = parse_message(build_document(message))
    assert parsed.business.doc_type == 3  # type: ignore[union-attr]
    assert parsed.business.replacements[0].document_id == "000.00.01.H41,2026/11/20,12-NQ/TU"  # type: ignore[union-attr]


@pytest.mark.parametrize(("number", "notation", "joined"), [
    ("12", "NQ/TU", "12-NQ/TU"), ("45", "QĐ-UBND", "45/QĐ-UBND"), ("7", None, "7")])
def test_numbers_split_and_join(number: str, notation: str | None, joined: str) -> None:
    assert join_number(number, notation) == joined
    assert split_number(joined) == (number, notation)


def test_header_maps_to_metadata() -> None:
    """The header becomes the fields a sidecar would give, validated the same way."""
    message = full_document()
    assert sidecar_fields(message.header, DEFAULT_DOCUMENT_TYPES) == {
        "number": "12-NQ/TU", "issuer": "Văn phòng Tỉnh ủy", "date": "2026-11-20",
        "subject": "Về đẩy mạnh chuyển đổi số giai đoạn 2026-2030",
        "signer": "Nguyễn Văn An", "due": "2026-11-30", "type": "Nghị quyết",
        "urgency": "flash"}
    meta = document_meta_for(message, file_name="x.edxml", recipients=["hdnd"],
                             organ_ids=OFFICES, types=DEFAULT_DOCUMENT_TYPES).as_envelope_meta()
    assert meta["type"] == "resolution" and meta["priority"] == 0
    assert meta["edxml"]["document_id"] == "000.00.01.H41,2026/11/20,12-NQ/TU"
    assert meta["edxml"]["attachments"] == ["Nghị quyết 12-NQ-TU.pdf", "Phụ lục.docx"]


def test_a_header_naming_another_office_is_refused() -> None:
    """To names ubnd but the file was put in hdnd's folder: refused, naming both."""
    message = full_document(to=(UBND,))
    with pytest.raises(EdxmlError) as caught:
        document_meta_for(message, file_name="x.edxml", recipients=["hdnd"], organ_ids=OFFICES,
                          types=DEFAULT_DOCUMENT_TYPES)
    assert caught.value.code == "edxml-wrong-recipient"
    assert "000.00.03.H41" in caught.value.reason and "hdnd" in caught.value.reason


def test_status_message_round_trip() -> None:
    status = StatusMessage(sender=TINHUY, status_code="03",
                           response_for=ResponseFor(document_id="abc"), description="152/VP",
                           timestamp="2026-11-25T08:05:00Z")
    assert parse_message(build_status(status)) == status
