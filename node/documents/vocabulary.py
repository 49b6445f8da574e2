"""The words of document metadata: types, urgencies, confidentiality classes, processing
statuses and sidecar field names, in English and Vietnamese, and how a spelling finds its
canonical name (pure).

Values may be written in English or in Vietnamese, with or without diacritics and with
spaces, hyphens or underscores ("Hỏa tốc", "hoa-toc", "HOA_TOC" are all *flash*): the tables
below are the single list of names, and docs/documents.md shows them to clerks.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from lienthong.config.schema import DEFAULT_DOCUMENT_TYPES
from lienthong.node.documents.petitions import (
    PETITION_FIELD_NAMES,
    PETITION_TYPE,
    PETITION_TYPE_NAMES,
)

#: The always-allowed type of short text messages.
MESSAGE_TYPE = "message"

#: Canonical type -> Vietnamese names and abbreviations (as in a number like 12-NQ/TU).
TYPE_NAMES: Mapping[str, tuple[str, ...]] = {
    "resolution": ("nghị quyết", "NQ"),
    "decision": ("quyết định", "QĐ"),
    "directive": ("chỉ thị", "CT"),
    "report": ("báo cáo", "BC"),
    "programme": ("chương trình", "CTr", "program"),
    "conclusion": ("kết luận", "KL"),
    "announcement": ("thông báo", "TB"),
    "publication": ("ấn phẩm", "xuất bản phẩm"),
    "letter": ("công văn", "CV"),
    "other": ("khác",),
    MESSAGE_TYPE: ("tin nhắn", "thông điệp"),
    PETITION_TYPE: PETITION_TYPE_NAMES,
}
#: Urgency (độ khẩn), most urgent last, and its queue priority.
URGENCY_NAMES: Mapping[str, tuple[str, ...]] = {
    "normal": ("thường",),
    "urgent": ("khẩn",),
    "very-urgent": ("thượng khẩn",),
    "flash": ("hỏa tốc", "hoả tốc"),
}
URGENCY_PRIORITY: Mapping[str, int] = {"flash": 0, "very-urgent": 1, "urgent": 2, "normal": 3}
#: Confidentiality (độ mật).
CONFIDENTIALITY_NAMES: Mapping[str, tuple[str, ...]] = {
    "normal": ("thường", "không mật"),
    "confidential": ("mật",),
    "secret": ("tối mật",),
    "top-secret": ("tuyệt mật",),
}
#: Processing statuses (``lienthong mark``), as edXML names them (codes 03-06 and 02).
STATUS_NAMES: Mapping[str, tuple[str, ...]] = {
    "registered": ("vào sổ", "đã vào sổ", "tiếp nhận"),
    "assigned": ("phân công", "đã phân công", "giao"),
    "in-progress": ("đang xử lý", "xử lý"),
    "completed": ("hoàn thành", "đã xử lý", "hoàn tất"),
    "rejected": ("từ chối", "trả lại"),
}
#: Sidecar keys, with the Vietnamese (unaccented) spellings a document system may write.
FIELD_NAMES: Mapping[str, tuple[str, ...]] = {
    "type": ("loai", "loai_van_ban"),
    "number": ("so_ky_hieu", "so"),
    "issuer": ("co_quan_ban_hanh", "noi_ban_hanh"),
    "date": ("ngay", "ngay_ban_hanh"),
    "subject": ("trich_yeu",),
    "signer": ("nguoi_ky",),
    "urgency": ("do_khan",),
    "confidentiality": ("do_mat",),
    "due": ("han_xu_ly", "han"),
    "reply_to": ("tra_loi", "phuc_dap"),
    "replaces": ("thay_the",),
    # programmes (docs/coordination.md)
    "period": ("ky", "ky_chuong_trinh"),
    "consolidated": ("tong_hop", "ban_tong_hop"),
    # conclusions of a leadership meeting (docs/coordination.md)
    "meeting": ("cuoc_hop", "ten_cuoc_hop"),
    "meeting_date": ("ngay_hop",),
    "meeting_chair": ("chu_tri", "nguoi_chu_tri"),
    "meeting_host": ("co_quan_chu_tri", "noi_chu_tri"),
    "concerned": ("co_quan_lien_quan", "lien_quan"),
    # citizens' petitions (docs/petitions.md)
    **PETITION_FIELD_NAMES,
}
_SEPARATORS = re.compile(r"[\s_\-]+")


def lookup_key(text: str) -> str:
    """The spelling-insensitive form of a name: 'Hỏa  tốc' -> 'hoa-toc', 'QĐ' -> 'qd'."""
    text = unicodedata.normalize("NFC", text).strip().lower().replace("đ", "d")
    stripped = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    return _SEPARATORS.sub("-", stripped).strip("-")


def _index(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for canonical, names in table.items():
        for name in (canonical, *names):
            index[lookup_key(name)] = canonical
    return index


#: Spelling (lookup_key) -> canonical name, for each table above.
_STATUS = _index(STATUS_NAMES)
URGENCY_BY_KEY = _index(URGENCY_NAMES)
CONFIDENTIALITY_BY_KEY = _index(CONFIDENTIALITY_NAMES)
FIELD_BY_KEY = _index(FIELD_NAMES)


def shown_names(table: Mapping[str, tuple[str, ...]], names: Iterable[str]) -> str:
    """'flash (hỏa tốc), urgent (khẩn)': ``names`` each with its first Vietnamese name."""
    return ", ".join(f"{n} ({table[n][0]})" if table.get(n) else n for n in names)


def type_index(allowed: Iterable[str]) -> Mapping[str, str]:
    """Spelling -> canonical type, for the configured types (and "message", always)."""
    return _type_index(tuple(dict.fromkeys((*allowed, MESSAGE_TYPE, PETITION_TYPE))))


@functools.lru_cache(maxsize=16)
def _type_index(allowed: tuple[str, ...]) -> Mapping[str, str]:
    # Built once per configured list, not per document: folding every spelling of every type
    # was 5 % of the sender's reactor time in a burst of small files (docs/benchmarks.md,
    # History 40). Read-only, since every caller shares it.
    return MappingProxyType(_index({name: TYPE_NAMES.get(name, ()) for name in allowed}))


def resolve_type(text: str, allowed: Iterable[str] = DEFAULT_DOCUMENT_TYPES) -> str | None:
    """The canonical document type ``text`` names among ``allowed``, or None."""
    return type_index(allowed).get(lookup_key(text))


def resolve_status(text: str) -> str | None:
    """The processing status ``text`` names ('vao-so' -> 'registered'), or None."""
    return _STATUS.get(lookup_key(text))


def describe_names(table: Mapping[str, tuple[str, ...]]) -> str:
    """'registered (vào sổ), assigned (phân công), ...' for help texts and errors."""
    return shown_names(table, table)


def resolve_urgency(text: str) -> str | None:
    return URGENCY_BY_KEY.get(lookup_key(text))


def resolve_confidentiality(text: str) -> str | None:
    return CONFIDENTIALITY_BY_KEY.get(lookup_key(text))
