"""The field mapping between an edXML MessageHeader and lienthong's document metadata (pure).

In: :func:`sidecar_fields` turns a header into the fields a sidecar would give (validated by
node/documents/metadata.py like any sidecar), and :func:`edxml_meta` keeps the edXML-only
identifiers (DocumentId, ResponseFor, the business marker) in the envelope's ``meta`` under
``"edxml"``, so the receiver can answer and match status messages. Out: :func:`header_from_meta`
writes a header from a received document's metadata. docs/edxml.md has the table both ways.

Số ký hiệu: lienthong keeps the whole "12-NQ/TU" or "45/QĐ-UBND"; edXML splits it into
CodeNumber (12, 45) and CodeNotation (NQ/TU, QĐ-UBND). :func:`join_number` and
:func:`split_number` are inverse for every number that starts with its digits.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lienthong.node.documents.vocabulary import TYPE_NAMES, resolve_type
from lienthong.node.edxml.message import (
    BUSINESS_NAMES,
    PRIORITY_URGENCY,
    URGENCY_PRIORITY,
    EdxmlDocument,
    MessageHeader,
    Organ,
    OtherInfo,
    ResponseFor,
)

#: The key of the edXML-only identifiers inside the envelope's ``meta``.
META_KEY = "edxml"


def join_number(number: str | None, notation: str | None) -> str | None:
    """CodeNumber and CodeNotation as one số ký hiệu: 45 + QĐ-UBND -> 45/QĐ-UBND, 12 + NQ/TU
    -> 12-NQ/TU (a party notation already holds the "/", so the number is joined by "-")."""
    if not number and not notation:
        return None
    if not notation:
        return number
    if not number:
        return notation
    return f"{number}{'-' if '/' in notation else '/'}{notation}"


def split_number(text: str | None) -> tuple[str | None, str | None]:
    """The inverse of :func:`join_number`: split at the first "/" or "-" after the digits."""
    if not text:
        return None, None
    for i, char in enumerate(text):
        if char in "/-" and i > 0:
            return text[:i], text[i + 1:] or None
    return text, None


def sidecar_fields(header: MessageHeader, types: Iterable[str]) -> dict[str, Any]:
    """What the header says in lienthong's metadata fields (canonical sidecar keys).

    The type is given only when TypeName names one lienthong knows; the edXML itself, which
    travels as the document, keeps every field either way.
    """
    fields: dict[str, Any] = {}
    number = join_number(header.code_number, header.code_notation)
    for key, value in (("number", number), ("issuer", header.sender.organ_name),
                       ("date", header.promulgation_date), ("subject", header.subject),
                       ("signer", header.signer_full_name), ("due", header.due_date)):
        if value is not None:
            fields[key] = value
    if header.type_name and resolve_type(header.type_name, types) is not None:
        fields["type"] = header.type_name
    if header.other.priority is not None:
        priority = header.other.priority.strip()
        fields["urgency"] = PRIORITY_URGENCY.get(int(priority), priority) if priority.isdigit() \
            else priority
    return fields


def edxml_meta(message: EdxmlDocument, *, file_name: str) -> dict[str, Any]:
    """The ``meta["edxml"]`` object: what only edXML has, for answers and status messages."""
    header = message.header
    meta: dict[str, Any] = {
        "business": BUSINESS_NAMES[message.business.doc_type],
        "from": header.sender.organ_id,
        "to": [organ.organ_id for organ in header.to],
        "attachments": [a.name for a in message.attachments],
        "file": file_name,
    }
    if header.document_id:
        meta["document_id"] = header.document_id
    if header.type_name or header.type:
        meta["type"] = header.type_name or header.type
    if header.response_for:
        meta["response_for"] = [item.document_id for item in header.response_for
                                if item.document_id]
    if message.business.replacements:
        meta["replaces"] = [item.document_id for item in message.business.replacements]
    if message.business.reason:
        meta["reason"] = message.business.reason
    return meta


def _type_name(meta: Mapping[str, Any]) -> str | None:
    kind = meta.get("type")
    if kind is None:
        return None
    names = TYPE_NAMES.get(kind)
    return names[0].capitalize() if names else str(kind)


def header_from_meta(meta: Mapping[str, Any], *, sender: Organ, recipient: Organ,
                     document_id: str | None = None) -> MessageHeader:
    """A MessageHeader for a received document that did not come as edXML (a PDF with its
    sidecar, say): every lienthong field in its edXML place."""
    number, notation = split_number(meta.get("number"))
    urgency = meta.get("urgency", "normal")
    return MessageHeader(
        sender=sender if not meta.get("issuer") else Organ(
            organ_id=sender.organ_id, organ_name=meta["issuer"]),
        to=(recipient,), code_number=number, code_notation=notation,
        promulgation_date=meta.get("date"), type_name=_type_name(meta),
        subject=meta.get("subject"), signer_full_name=meta.get("signer"),
        due_date=meta.get("due"),
        other=OtherInfo(priority=str(URGENCY_PRIORITY.get(urgency, 0))),
        response_for=(ResponseFor(document_id=meta["reply_to"]),) if meta.get("reply_to")
        else (),
        document_id=document_id)
