"""Reading a parsed edXML message's elements into its values, strictly (pure).

:class:`FieldReader` reads elements of one namespace, the message's: it refuses an element
from another namespace that merely *looks* like ``Subject`` (rather than reading or skipping
it), a single-valued field given twice (rather than choosing one), text that is too long or
holds control or invisible characters, and a date it cannot read. What it returns are the
values of node/edxml/message.py: ``MessageHeader``, ``Business``, ``Trace``,
``StatusMessage`` and the ``Attachment``s the parser decoded (node/edxml/tree.py).
"""
from __future__ import annotations

import datetime as dt
import unicodedata
import xml.etree.ElementTree as ElementTree
from typing import Any

from lienthong.node.edxml.limits import MAX_CONTENT, MAX_FIELD, Limits, bad_edxml
from lienthong.node.edxml.message import (
    NAMESPACE,
    ORGAN_FIELDS,
    OTHER_FIELDS,
    STAFF_FIELDS,
    STATUS_CODES,
    XLINK,
    Attachment,
    Business,
    MessageHeader,
    Organ,
    OtherInfo,
    Replacement,
    ResponseFor,
    StaffInfo,
    StatusMessage,
    Trace,
)
from lienthong.node.edxml.tree import Decoded
from lienthong.node.language.text import Phrase

_WHITESPACE_CONTROLS = frozenset("\n\r\t")
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def message_namespace(root: ElementTree.Element) -> str:
    if root.tag.startswith("{"):
        ns = root.tag[1:].split("}", 1)[0]
        if ns != NAMESPACE:
            raise bad_edxml(Phrase("the message's namespace is {found}, not the edXML namespace "
                                   "{expected}; it is not a QCVN 102 message", found=repr(ns),
                                   expected=repr(NAMESPACE)))
        return ns
    return ""


def _date(text: str, where: str) -> str:
    head = text.strip()[:10]
    for pattern in ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(head, pattern).date().isoformat()
        except ValueError:
            continue
    raise bad_edxml(Phrase("{where}: {value} is not a date such as 2026/11/20", where=where,
                           value=repr(text)))


class FieldReader:
    """Reading elements of one namespace (the message's), strictly."""

    def __init__(self, ns: str, decoded: dict[ElementTree.Element, Decoded]) -> None:
        self.ns = ns
        self.decoded = decoded

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}" if self.ns else name

    def check_namespaces(self, root: ElementTree.Element) -> None:
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            ns = element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else ""
            if ns != self.ns:
                raise bad_edxml(Phrase("the element {element} is in the namespace {found}, not "
                                       "the message's {expected}; a message mixing namespaces is "
                                       "refused rather than guessed at",
                                       element=repr(local_name(element.tag)),
                                       found=repr(ns or "(none)"),
                                       expected=repr(self.ns or "(none)")))
            for attribute in element.attrib:
                if attribute.startswith("{") and not attribute.startswith(f"{{{XLINK}}}"):
                    raise bad_edxml(Phrase("the element {element} has the attribute {attribute} "
                                           "from an unexpected namespace",
                                           element=repr(local_name(element.tag)),
                                           attribute=repr(attribute)))

    def all(self, parent: ElementTree.Element, name: str) -> list[ElementTree.Element]:
        return parent.findall(self.q(name))

    def one(self, parent: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
        if parent is None:
            return None
        found = self.all(parent, name)
        if len(found) > 1:
            raise bad_edxml(Phrase("{parent} has {count} {name} elements where one is allowed; "
                                   "lienthong will not choose between them",
                                   parent=local_name(parent.tag), count=len(found), name=name))
        return found[0] if found else None

    def required(self, parent: ElementTree.Element, name: str) -> ElementTree.Element:
        found = self.one(parent, name)
        if found is None:
            raise bad_edxml(Phrase("{parent} has no {name}; the message is incomplete",
                                   parent=local_name(parent.tag), name=name))
        return found

    def text(self, parent: ElementTree.Element | None, name: str,
             limit: int = MAX_FIELD) -> str | None:
        element = self.one(parent, name)
        if element is None:
            return None
        return self.value(element, name, limit)

    def value(self, element: ElementTree.Element, name: str, limit: int = MAX_FIELD) -> str | None:
        if len(element):
            raise bad_edxml(Phrase("{name} should hold text, not other elements", name=name))
        text = unicodedata.normalize("NFC", (element.text or "").strip())
        if not text:
            return None
        if len(text) > limit:
            raise bad_edxml(Phrase("{name} is {length} characters; at most {limit} are allowed",
                                   name=name, length=len(text), limit=limit))
        if any(unicodedata.category(c) in _FORBIDDEN and c not in _WHITESPACE_CONTROLS
               for c in text):
            raise bad_edxml(Phrase("{name} contains control or invisible characters", name=name))
        return text

    def texts(self, parent: ElementTree.Element | None, name: str) -> tuple[str, ...]:
        if parent is None:
            return ()
        return tuple(v for v in (self.value(e, name) for e in self.all(parent, name)) if v)

    def fields(self, parent: ElementTree.Element | None,
               spec: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        return {attr: self.text(parent, element) for attr, element in spec}

    def organ(self, element: ElementTree.Element, where: str) -> Organ:
        values = self.fields(element, ORGAN_FIELDS)
        if not values["organ_id"]:
            raise bad_edxml(Phrase("{where} has no OrganId (the office's identifier code)",
                                   where=where))
        return Organ(**values)

    def header(self, element: ElementTree.Element) -> MessageHeader:
        sender = self.organ(self.required(element, "From"), "From")
        to = tuple(self.organ(e, "To") for e in self.all(element, "To"))
        code = self.one(element, "Code")
        promulgation = self.one(element, "PromulgationInfo")
        kind = self.one(element, "DocumentType")
        signer = self.one(element, "SignerInfo")
        other = self.one(element, "OtherInfo")
        places = self.one(element, "ToPlaces")
        appendixes = self.one(other, "Appendixes")
        return MessageHeader(
            sender=sender, to=to,
            code_number=self.text(code, "CodeNumber"),
            code_notation=self.text(code, "CodeNotation"),
            place=self.text(promulgation, "Place"),
            promulgation_date=self.date(promulgation, "PromulgationDate"),
            type=self.text(kind, "Type"), type_name=self.text(kind, "TypeName"),
            type_detail=self.text(kind, "TypeDetail"),
            subject=self.text(element, "Subject"),
            content=self.text(element, "Content", MAX_CONTENT),
            signer_competence=self.text(signer, "Competence"),
            signer_position=self.text(signer, "Position"),
            signer_full_name=self.text(signer, "FullName"),
            due_date=self.date(element, "DueDate"),
            to_places=self.texts(places, "Place"),
            other=OtherInfo(**self.fields(other, OTHER_FIELDS),
                            appendixes=self.texts(appendixes, "Appendix")),
            response_for=tuple(self.response_for(e) for e in self.all(element, "ResponseFor")),
            steering_type=self.text(element, "SteeringType"),
            document_id=self.text(element, "DocumentId"))

    def date(self, parent: ElementTree.Element | None, name: str) -> str | None:
        text = self.text(parent, name)
        return _date(text, name) if text else None

    def response_for(self, element: ElementTree.Element) -> ResponseFor:
        return ResponseFor(organ_id=self.text(element, "OrganId"),
                           code=self.text(element, "Code"),
                           promulgation_date=self.date(element, "PromulgationDate"),
                           document_id=self.text(element, "DocumentId"))

    def staff(self, element: ElementTree.Element | None) -> StaffInfo | None:
        return None if element is None else StaffInfo(**self.fields(element, STAFF_FIELDS))

    def business(self, trace_list: ElementTree.Element | None) -> Business:
        element = self.one(trace_list, "Bussiness")
        if element is None:
            return Business()
        doc_type = self.text(element, "BussinessDocType") or "0"
        if doc_type not in ("0", "1", "2", "3"):
            raise bad_edxml(Phrase("BussinessDocType is {value}; it must be 0 (new), 1 (recall), "
                                   "2 (update) or 3 (replace)", value=repr(doc_type)))
        replacements = []
        holder = self.one(element, "ReplacementInfoList")
        for info in self.all(element if holder is None else holder, "ReplacementInfo"):
            replaced = self.text(info, "DocumentId")
            if not replaced:
                raise bad_edxml(Phrase("a ReplacementInfo has no DocumentId: which document does "
                                       "it name?"))
            replacements.append(Replacement(
                document_id=replaced,
                organ_ids=self.texts(self.one(info, "OrganIdList"), "OrganId")))
        return Business(doc_type=int(doc_type), reason=self.text(element, "BussinessDocReason"),
                        paper=self.text(element, "Paper"),
                        document_id=self.text(element, "DocumentId"),
                        staff=self.staff(self.one(element, "StaffInfo")),
                        replacements=tuple(replacements))

    def traces(self, trace_list: ElementTree.Element | None) -> tuple[Trace, ...]:
        if trace_list is None:
            return ()
        found = []
        for element in self.all(trace_list, "TraceHeader"):
            organ_id = self.text(element, "OrganId")
            if organ_id:
                found.append(Trace(organ_id, self.text(element, "Timestamp")))
        return tuple(found)

    def status(self, element: ElementTree.Element) -> StatusMessage:
        code = self.text(element, "StatusCode") or ""
        code = code.zfill(2) if code.isdigit() else code
        response = self.one(element, "ResponseFor")
        if response is None:
            raise bad_edxml(Phrase("the status message has no ResponseFor: which document is it "
                                   "about?"))
        if code not in STATUS_CODES:
            raise bad_edxml(Phrase("the status message's StatusCode is {value}; it must be one of "
                                   "{codes}", value=repr(code), codes=", ".join(STATUS_CODES)))
        try:
            return StatusMessage(sender=self.organ(self.required(element, "From"), "From"),
                                 status_code=code, response_for=self.response_for(response),
                                 description=self.text(element, "Description"),
                                 timestamp=self.text(element, "Timestamp"),
                                 staff=self.staff(self.one(element, "StaffInfo")))
        except ValueError as exc:
            raise bad_edxml(Phrase("the status message's StatusCode is wrong: {problem}",
                                   problem=str(exc))) from None

    def attachments(self, root: ElementTree.Element, limits: Limits) -> tuple[Attachment, ...]:
        encoded = self.one(root, "AttachmentEncoded")
        if encoded is None:
            return ()
        found: list[Attachment] = []
        for number, element in enumerate(self.all(encoded, "Attachment"), 1):
            name = self.text(element, "AttachmentName") or f"attachment-{number}"
            content = self.one(element, "ContentTransferEncoded")
            outcome = self.decoded.get(content) if content is not None else None
            if outcome is None:
                raise bad_edxml(Phrase("the attachment {name} has no ContentTransferEncoded "
                                       "content", name=repr(name)))
            found.append(Attachment(
                name=name, data=outcome.kept if isinstance(outcome.kept, bytes) else b"",
                content_type=self.text(element, "ContentType") or "application/octet-stream",
                content_id=self.text(element, "ContentId"),
                description=self.text(element, "Description"),
                file=outcome.kept if isinstance(outcome.kept, str) else None,
                size=outcome.size))
        return tuple(found)
