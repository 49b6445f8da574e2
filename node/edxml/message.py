"""The edXML message as values: the MessageHeader fields, the business markers, the attachments,
and the status message, with the standard's code tables (pure).

The field list follows the numbered MessageHeader of QCVN 102:2016/BTTTT (1.1 From ... 1.14
DocumentId), the ``Bussiness`` block of the TraceHeaderList (the standard's own spelling) and
the status message; docs/edxml.md maps each to lienthong's metadata. Values are frozen and
hold text exactly as the message gave it (NFC), dates as ISO ``YYYY-MM-DD``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The namespace of QCVN 102:2016 messages.
NAMESPACE = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XLINK = "http://www.w3.org/1999/xlink"

#: BussinessDocType: what the message does to a document.
NEW, RECALL, UPDATE, REPLACE = 0, 1, 2, 3
BUSINESS_NAMES: Mapping[int, str] = {NEW: "new", RECALL: "recall", UPDATE: "update",
                                     REPLACE: "replace"}

#: OtherInfo/Priority -> lienthong urgency (4, "hỏa tốc hẹn giờ", is flash with a set time).
PRIORITY_URGENCY: Mapping[int, str] = {0: "normal", 1: "urgent", 2: "very-urgent", 3: "flash",
                                       4: "flash"}
URGENCY_PRIORITY: Mapping[str, int] = {"normal": 0, "urgent": 1, "very-urgent": 2, "flash": 3}

#: Status codes of edXML status messages and lienthong's names for them.
STATUS_CODES: Mapping[str, str] = {
    "01": "delivered", "02": "rejected", "03": "registered", "04": "assigned",
    "05": "in-progress", "06": "completed", "13": "recall-requested",
    "15": "recall-accepted", "16": "recall-refused",
}
CODE_OF_STATUS: Mapping[str, str] = {name: code for code, name in STATUS_CODES.items()}
#: The codes an office may send as its own processing status (``lienthong mark``).
MARKABLE_CODES = ("02", "03", "04", "05", "06")

#: (attribute, element) of an organisation (From, To).
ORGAN_FIELDS = (("organ_id", "OrganId"), ("organization_in_charge", "OrganizationInCharge"),
                ("organ_name", "OrganName"), ("organ_add", "OrganAdd"), ("email", "Email"),
                ("telephone", "Telephone"), ("fax", "Fax"), ("website", "Website"))
#: (attribute, element) of OtherInfo's single-valued fields.
OTHER_FIELDS = (("priority", "Priority"), ("sphere_of_promulgation", "SphereOfPromulgation"),
                ("typer_notation", "TyperNotation"), ("promulgation_amount", "PromulgationAmount"),
                ("page_amount", "PageAmount"), ("direction", "Direction"))
#: (attribute, element) of StaffInfo.
STAFF_FIELDS = (("department", "Department"), ("staff", "Staff"), ("mobile", "Mobile"),
                ("email", "Email"))


@dataclass(frozen=True, slots=True)
class Organ:
    """1.1 From / 1.2 To: an office, identified by its identifier code (mã định danh)."""

    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None

    def __post_init__(self) -> None:
        if not self.organ_id:
            raise ValueError("an office needs its OrganId")


@dataclass(frozen=True, slots=True)
class OtherInfo:
    """1.11 OtherInfo; ``appendixes`` are the Appendix texts, in order."""

    priority: str | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: str | None = None
    page_amount: str | None = None
    direction: str | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """1.12 ResponseFor: the document this one answers."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: str | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Replacement:
    """One ReplacementInfo: the document replaced (or recalled, updated) and its recipients."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Business:
    """The ``Bussiness`` block: new, recall, update or replace, with why and what."""

    doc_type: int = NEW
    reason: str | None = None
    paper: str | None = None
    document_id: str | None = None
    staff: StaffInfo | None = None
    replacements: tuple[Replacement, ...] = ()

    def __post_init__(self) -> None:
        if self.doc_type not in BUSINESS_NAMES:
            raise ValueError(f"BussinessDocType {self.doc_type!r} is not 0, 1, 2 or 3")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """Every MessageHeader field of the field list (1.1-1.14)."""

    sender: Organ
    to: tuple[Organ, ...] = ()
    code_number: str | None = None
    code_notation: str | None = None
    place: str | None = None
    promulgation_date: str | None = None
    type: str | None = None
    type_name: str | None = None
    type_detail: str | None = None
    subject: str | None = None
    content: str | None = None
    signer_competence: str | None = None
    signer_position: str | None = None
    signer_full_name: str | None = None
    due_date: str | None = None
    to_places: tuple[str, ...] = ()
    other: OtherInfo = field(default_factory=OtherInfo)
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: str | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment, its bytes decoded: in ``data``, or (a message read from a file without
    holding it, node/edxml/parse.py) in the file ``file``, or only counted (``size``). Two
    attachments are equal when their name, type, identifiers and bytes are."""

    name: str
    data: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None
    description: str | None = None
    file: str | None = field(default=None, compare=False)
    size: int = field(default=-1, compare=False)

    @property
    def length(self) -> int:
        """The decoded size in bytes."""
        return self.size if self.size >= 0 else len(self.data)


@dataclass(frozen=True, slots=True)
class Trace:
    organ_id: str
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class EdxmlDocument:
    """A whole document message: header, business marker, trace and attachments."""

    header: MessageHeader
    business: Business = field(default_factory=Business)
    traces: tuple[Trace, ...] = ()
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """An edXML status message: what an office did with a document (``StatusCode``)."""

    sender: Organ
    status_code: str
    response_for: ResponseFor
    description: str | None = None
    timestamp: str | None = None
    staff: StaffInfo | None = None

    def __post_init__(self) -> None:
        if self.status_code not in STATUS_CODES:
            raise ValueError(f"status code {self.status_code!r} is not one of "
                             f"{', '.join(STATUS_CODES)}")


def document_id(organ_id: str, date: str | None, number: str | None) -> str:
    """The DocumentId convention of the SDK samples: ``sender,YYYY/MM/DD,number/notation``."""
    return ",".join((organ_id, (date or "").replace("-", "/"), number or ""))
