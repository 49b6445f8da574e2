"""Writing edXML messages: a document with its attachments, or a status message (pure).

The output is deterministic (same values, same bytes): elements in the order of the field list,
fields that are not set left out, the ``edXML`` prefix on every element, UTF-8, attachments in
base64 wrapped at 76 characters. :mod:`lienthong.node.edxml.parse` reads back exactly the
values written (tests/node/edxml/test_build.py).
"""
from __future__ import annotations

import base64
import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from lienthong.node.edxml.message import (
    NAMESPACE,
    ORGAN_FIELDS,
    OTHER_FIELDS,
    STAFF_FIELDS,
    XLINK,
    Business,
    EdxmlDocument,
    Organ,
    ResponseFor,
    StaffInfo,
    StatusMessage,
)

ElementTree.register_namespace("edXML", NAMESPACE)
ElementTree.register_namespace("xlink", XLINK)


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _add(parent: ElementTree.Element, name: str, text: str | None = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, _q(name))
    if text is not None:
        element.text = text
    return element


def _leaf(parent: ElementTree.Element, name: str, text: str | None) -> None:
    if text is not None:
        _add(parent, name, text)


def _fields(parent: ElementTree.Element, value: Any,
            spec: tuple[tuple[str, str], ...]) -> None:
    for attr, element in spec:
        _leaf(parent, element, getattr(value, attr))


def _group(parent: ElementTree.Element, name: str,
           leaves: list[tuple[str, str | None]]) -> None:
    """A group element (Code, SignerInfo...) with its set leaves; left out if none is set."""
    if any(text is not None for _, text in leaves):
        group = _add(parent, name)
        for leaf, text in leaves:
            _leaf(group, leaf, text)


def edxml_date(iso: str | None) -> str | None:
    """``2026-11-20`` -> ``2026/11/20``, the form of the SDK samples."""
    return None if iso is None else iso.replace("-", "/")


def _organ(parent: ElementTree.Element, name: str, organ: Organ) -> None:
    _fields(_add(parent, name), organ, ORGAN_FIELDS)


def _response_for(parent: ElementTree.Element, item: ResponseFor) -> None:
    _group(parent, "ResponseFor", [("OrganId", item.organ_id), ("Code", item.code),
                                   ("PromulgationDate", edxml_date(item.promulgation_date)),
                                   ("DocumentId", item.document_id)])


def _staff(parent: ElementTree.Element, staff: StaffInfo | None) -> None:
    if staff is not None:
        _fields(_add(parent, "StaffInfo"), staff, STAFF_FIELDS)


def _business(parent: ElementTree.Element, business: Business) -> None:
    element = _add(parent, "Bussiness")
    _add(element, "BussinessDocType", str(business.doc_type))
    _leaf(element, "BussinessDocReason", business.reason)
    _leaf(element, "DocumentId", business.document_id)
    _staff(element, business.staff)
    _leaf(element, "Paper", business.paper)
    if business.replacements:
        holder = _add(element, "ReplacementInfoList")
        for item in business.replacements:
            info = _add(holder, "ReplacementInfo")
            _add(info, "DocumentId", item.document_id)
            if item.organ_ids:
                organs = _add(info, "OrganIdList")
                for organ_id in item.organ_ids:
                    _add(organs, "OrganId", organ_id)


def _serialise(root: ElementTree.Element) -> bytes:
    ElementTree.indent(root, space="  ")
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


#: Bytes of an attachment encoded at a time: a multiple of 57, so the 76-character lines come
#: out exactly as ``base64.encodebytes`` of the whole would write them.
ENCODE_BLOCK = 57 * 1024


def build_document(message: EdxmlDocument) -> bytes:
    """The edXML bytes of a document message."""
    pieces = document_pieces(message)
    encoded = [base64.encodebytes(a.data) for a in message.attachments]
    return b"".join(piece for pair in zip(pieces, [*encoded, b""], strict=True) for piece in pair)


def write_document(message: EdxmlDocument, out: BinaryIO,
                   blocks_of: Callable[[int], Iterable[bytes]]) -> None:
    """Write the edXML of ``message`` to ``out`` with attachment ``n``'s bytes (1-based) read
    from ``blocks_of(n)`` in blocks of ENCODE_BLOCK bytes and encoded as they go (a large
    document is never held in memory, nor its base64). Same bytes as :func:`build_document`."""
    pieces = document_pieces(message)
    for number, piece in enumerate(pieces[:-1], 1):
        out.write(piece)
        for block in blocks_of(number):
            out.write(base64.encodebytes(block))
    out.write(pieces[-1])


def document_pieces(message: EdxmlDocument) -> list[bytes]:
    """The edXML of a document message without its attachments' base64 text: the pieces
    before, between and after them (one more than there are attachments)."""
    marks = [f"@lienthong-{secrets.token_hex(16)}-{n}@" for n in range(len(message.attachments))]
    data = _serialise(_document_tree(message, marks))
    pieces = []
    for mark in marks:
        before, found, data = data.partition(mark.encode("ascii"))
        if not found or mark.encode("ascii") in data:
            raise ValueError("an attachment's place was not found once in the built message")
        pieces.append(before)
    pieces.append(data)
    return pieces


def _document_tree(message: EdxmlDocument, marks: list[str]) -> ElementTree.Element:
    h = message.header
    root = ElementTree.Element(_q("edXML"))
    envelope = _add(root, "edXMLEnvelope")
    header = _add(envelope, "edXMLHeader")
    m = _add(header, "MessageHeader")
    _organ(m, "From", h.sender)
    for organ in h.to:
        _organ(m, "To", organ)
    _leaf(m, "DocumentId", h.document_id)
    _group(m, "Code", [("CodeNumber", h.code_number), ("CodeNotation", h.code_notation)])
    _group(m, "PromulgationInfo", [("Place", h.place),
                                   ("PromulgationDate", edxml_date(h.promulgation_date))])
    _group(m, "DocumentType", [("Type", h.type), ("TypeName", h.type_name),
                               ("TypeDetail", h.type_detail)])
    _leaf(m, "Subject", h.subject)
    _leaf(m, "Content", h.content)
    _group(m, "SignerInfo", [("Competence", h.signer_competence),
                             ("Position", h.signer_position), ("FullName", h.signer_full_name)])
    _leaf(m, "DueDate", edxml_date(h.due_date))
    if h.to_places:
        places = _add(m, "ToPlaces")
        for place in h.to_places:
            _add(places, "Place", place)
    other = _add(m, "OtherInfo")
    _fields(other, h.other, OTHER_FIELDS)
    if h.other.appendixes:
        appendixes = _add(other, "Appendixes")
        for text in h.other.appendixes:
            _add(appendixes, "Appendix", text)
    for item in h.response_for:
        _response_for(m, item)
    _leaf(m, "SteeringType", h.steering_type)
    traces = _add(header, "TraceHeaderList")
    for trace in message.traces:
        _group(traces, "TraceHeader", [("OrganId", trace.organ_id),
                                       ("Timestamp", trace.timestamp)])
    _business(traces, message.business)
    body = _add(envelope, "edXMLBody")
    manifest = _add(body, "edXMLManifest")
    for number, attachment in enumerate(message.attachments, 1):
        reference = _add(manifest, "Reference")
        reference.set(f"{{{XLINK}}}href", f"cid:{attachment.content_id or number}")
        _add(reference, "AttachmentName", attachment.name)
    if message.attachments:
        encoded = _add(root, "AttachmentEncoded")
        for number, attachment in enumerate(message.attachments, 1):
            element = _add(encoded, "Attachment")
            _add(element, "ContentType", attachment.content_type)
            _add(element, "ContentId", attachment.content_id or str(number))
            _leaf(element, "Description", attachment.description)
            _add(element, "AttachmentName", attachment.name)
            _add(element, "ContentTransferEncoded", marks[number - 1])
    return root


def build_status(status: StatusMessage) -> bytes:
    """The edXML bytes of a status message."""
    root = ElementTree.Element(_q("edXML"))
    header = _add(_add(root, "edXMLEnvelope"), "edXMLHeader")
    element = _add(header, "Status")
    _response_for(element, status.response_for)
    _organ(element, "From", status.sender)
    _add(element, "StatusCode", status.status_code)
    _leaf(element, "Description", status.description)
    _leaf(element, "Timestamp", status.timestamp)
    _staff(element, status.staff)
    return _serialise(root)
