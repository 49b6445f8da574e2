"""Sample edXML messages written from the field list (docs/edxml.md): every MessageHeader field
set, Vietnamese text, several attachments; and the hostile files of issue 21."""
from __future__ import annotations

import unicodedata

from lienthong.node.edxml.message import (
    REPLACE,
    Attachment,
    Business,
    EdxmlDocument,
    MessageHeader,
    Organ,
    OtherInfo,
    Replacement,
    ResponseFor,
    StaffInfo,
    Trace,
)

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
TINHUY = Organ(organ_id="000.00.01.H41", organization_in_charge="Tỉnh ủy Nghệ An",
               organ_name="Văn phòng Tỉnh ủy", organ_add="Số 1 đường Trường Thi, Vinh",
               email="vanthu@tinhuy.example.vn", telephone="0238 3844 000", fax="0238 3844 001",
               website="https://tinhuy.example.vn")
HDND = Organ(organ_id="000.00.02.H41", organ_name="Văn phòng Đoàn ĐBQH và HĐND tỉnh")
UBND = Organ(organ_id="000.00.03.H41", organ_name="Văn phòng UBND tỉnh")
OFFICES = {"hdnd": HDND.organ_id, "ubnd": UBND.organ_id}


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def full_header(*, to: tuple[Organ, ...] = (HDND,), decomposed: bool = False) -> MessageHeader:
    """Every field of the list set; ``decomposed`` writes the Vietnamese text in NFD."""
    t = nfd if decomposed else (lambda text: text)
    return MessageHeader(
        sender=TINHUY, to=to, code_number="12", code_notation="NQ/TU",
        place=t("Nghệ An"), promulgation_date="2026-11-20", type="1",
        type_name=t("Nghị quyết"), type_detail=t("Nghị quyết chuyên đề"),
        subject=t("Về đẩy mạnh chuyển đổi số giai đoạn 2026-2030"),
        content=t("Ban Thường vụ Tỉnh ủy quyết nghị:\n1. Đẩy mạnh chuyển đổi số."),
        signer_competence=t("TM. Ban Thường vụ"), signer_position=t("Bí thư"),
        signer_full_name=t("Nguyễn Văn An"), due_date="2026-11-30",
        to_places=(t("Các sở, ban, ngành"), t("Lưu VT")),
        other=OtherInfo(priority="3", sphere_of_promulgation=t("Toàn tỉnh"),
                        typer_notation="VT", promulgation_amount="40", page_amount="3",
                        direction="0", appendixes=(t("Phụ lục I"), t("Phụ lục II"))),
        response_for=(ResponseFor(organ_id="000.00.03.H41", code="45/QĐ-UBND",
                                  promulgation_date="2026-11-01",
                                  document_id="000.00.03.H41,2026/11/01,45/QĐ-UBND"),),
        steering_type="1", document_id="000.00.01.H41,2026/11/20,12-NQ/TU")


ATTACHMENTS = (
    Attachment(name="Nghị quyết 12-NQ-TU.pdf", data=b"%PDF-1.7\n" + bytes(range(256)) * 40,
               content_type="application/pdf", content_id="1", description="Bản chính"),
    Attachment(name="Phụ lục.docx", data=b"PK\x03\x04" + b"\x00\xff" * 3000,
               content_type="application/vnd.openxmlformats-officedocument"
                            ".wordprocessingml.document", content_id="2"),
)


def full_document(**kwargs: object) -> EdxmlDocument:
    return EdxmlDocument(header=full_header(**kwargs),  # type: ignore[arg-type]
                         business=Business(paper="0", staff=StaffInfo(
                             department="Văn phòng", staff="Trần Thị Bình",
                             mobile="0912345678", email="binh@tinhuy.example.vn")),
                         traces=(Trace("000.00.01.H41", "2026-11-20T08:00:00+07:00"),),
                         attachments=ATTACHMENTS)


def replacement(of: str) -> EdxmlDocument:
    header = full_header()
    return EdxmlDocument(
        header=MessageHeader(**{**{f: getattr(header, f) for f in header.__slots__},
                                "code_number": "13", "document_id": None}),
        business=Business(doc_type=REPLACE, reason="Sửa số ký hiệu",
                          replacements=(Replacement(of, (HDND.organ_id,)),)),
        attachments=ATTACHMENTS[:1])


def minimal(body: str, *, declaration: str = "") -> bytes:
    """A small document message around ``body`` (placed inside MessageHeader)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>{declaration}'
            f'<edXML:edXML xmlns:edXML="{NS}"><edXML:edXMLEnvelope><edXML:edXMLHeader>'
            f'<edXML:MessageHeader><edXML:From><edXML:OrganId>000.00.01.H41</edXML:OrganId>'
            f'</edXML:From>{body}</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope>'
            f'<edXML:AttachmentEncoded><edXML:Attachment><edXML:AttachmentName>a.txt'
            f'</edXML:AttachmentName><edXML:ContentTransferEncoded>aGVsbG8=</edXML:ContentTransferEncoded>'
            f'</edXML:Attachment></edXML:AttachmentEncoded></edXML:edXML>').encode()


BILLION_LAUGHS = minimal("<edXML:Subject>&lol9;</edXML:Subject>", declaration=(
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10)) + "]>"))
EXTERNAL_FILE = minimal("<edXML:Subject>&x;</edXML:Subject>",
                        declaration='<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
EXTERNAL_NETWORK = minimal("<edXML:Subject>&x;</edXML:Subject>",
                           declaration='<!DOCTYPE m [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>')
PLAIN_DOCTYPE = minimal("<edXML:Subject>x</edXML:Subject>", declaration="<!DOCTYPE edXML>")
BAD_BASE64 = minimal("<edXML:Subject>x</edXML:Subject>").replace(b"aGVsbG8=", b"aGVs!!bG8")
FOREIGN_SUBJECT = minimal('<evil:Subject xmlns:evil="urn:evil">Giả mạo</evil:Subject>')
WRONG_ROOT_NAMESPACE = minimal("<edXML:Subject>x</edXML:Subject>").replace(
    NS.encode(), b"http://www.mic.gov.vn/TBT/QCVN_102_2016/evil")
TWO_SUBJECTS = minimal("<edXML:Subject>Một</edXML:Subject><edXML:Subject>Hai</edXML:Subject>")
