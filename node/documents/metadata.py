"""Document metadata as the offices know it: parsing, validating and naming it (pure).

Theory of operation
-------------------
A document's metadata (type, number/notation, issuing office, date, subject, signer,
urgency, confidentiality, due date, reply-to, replaces) comes from two places:

* the **sidecar** ``NAME.meta.toml`` a clerk or a document system writes beside ``NAME`` in
  the outbox (:func:`parse_sidecar`);
* the **folder** it is dropped in, ``outbox/<peer>/<type-or-urgency>/`` (the hint).

:func:`document_meta` merges the two and validates every field *before* anything is sealed,
so a mistake is refused into ``failed/`` with a reason that names the field and what is
allowed (:class:`MetadataError`), instead of reaching another office. The result is the
``meta`` object signed into the envelope header; the receiver writes it as JSON beside the
delivered document. Urgency becomes the queue priority (flash 0 ... normal 3), and
:func:`check_confidentiality` refuses secret and top-secret documents unless the
configuration allows that class for every recipient.

Values may be written in English or in Vietnamese, with or without diacritics and with
spaces, hyphens or underscores ("Hỏa tốc", "hoa-toc", "HOA_TOC" are all *flash*): the tables
below are the single list of names, and docs/documents.md shows them to clerks.

Pure: no I/O, no clock. Reading the sidecar file is node/outbox/sidecars.py's job.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lienthong.config.schema import DEFAULT_DOCUMENT_TYPES, GUARDED_CLASSES, NAME_PATTERN
from lienthong.node.core.errors import NodeError
from lienthong.node.documents.numbers import NumberError, check_number
from lienthong.node.documents.periods import parse_period
from lienthong.node.documents.petitions import (
    PETITION_FIELD_NAMES,
    PETITION_TYPE,
    PETITION_TYPE_NAMES,
    PetitionError,
    petition_fields,
)
from lienthong.node.language.text import Phrase

SIDECAR_SUFFIX = ".meta.toml"
MAX_SIDECAR_BYTES = 64 * 1024
#: A short message (``lienthong message`` or a .txt with type = "message") is at most this.
MAX_MESSAGE_BYTES = 64 * 1024

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
_TEXT_LIMITS = {"number": 64, "issuer": 200, "subject": 1000, "signer": 100, "meeting": 500,
                "meeting_chair": 100}
#: Fields only one type of document may carry.
_ONLY_FOR = {"period": "programme", "consolidated": "programme", "meeting": "conclusion",
             "meeting_date": "conclusion", "meeting_chair": "conclusion",
             "meeting_host": "conclusion", "concerned": "conclusion",
             **dict.fromkeys(PETITION_FIELD_NAMES, PETITION_TYPE)}
#: What a petition may carry besides its own fields (docs/petitions.md §2).
_PETITION_ALSO = frozenset({"type", "urgency", "confidentiality", "subject", "reply_to",
                            "replaces"})
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SEPARATORS = re.compile(r"[\s_\-]+")


class MetadataError(NodeError):
    """Metadata that will not be sent, with a reason a clerk can act on.

    ``code`` is stable (audit log, tests): ``bad-metadata`` for a sidecar or folder mistake,
    ``confidentiality-refused`` for a class this office may not send to that peer.
    """

    code = "bad-metadata"

    def __init__(self, code: str, reason: str | Phrase, *, petition: bool = False) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        #: The reason as a clerk reads it (a Phrase is translated where it is written, in
        #: the reason file beside the refused document).
        self.reason_text = reason
        self.reason = str(reason)
        #: A citizens' petition's: its file name must not be logged or audited, and
        #: ``reason`` never repeats a value (docs/petitions.md §5).
        self.petition = petition


def _bad(reason: str | Phrase) -> MetadataError:
    return MetadataError("bad-metadata", reason)


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


_STATUS = _index(STATUS_NAMES)
_URGENCY = _index(URGENCY_NAMES)
_CONFIDENTIALITY = _index(CONFIDENTIALITY_NAMES)
_FIELDS = _index(FIELD_NAMES)


def _shown(table: Mapping[str, tuple[str, ...]], names: Iterable[str]) -> str:
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
    return _shown(table, table)


def resolve_urgency(text: str) -> str | None:
    return _URGENCY.get(lookup_key(text))


def resolve_confidentiality(text: str) -> str | None:
    return _CONFIDENTIALITY.get(lookup_key(text))


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    """Validated metadata of one outgoing document; ``as_envelope_meta`` is what is signed."""

    kind: str = "document"
    type: str | None = None
    number: str | None = None
    issuer: str | None = None
    date: str | None = None
    subject: str | None = None
    signer: str | None = None
    urgency: str = "normal"
    confidentiality: str = "normal"
    due: str | None = None
    reply_to: str | None = None
    replaces: str | None = None
    period: str | None = None
    consolidated: bool | None = None
    meeting: str | None = None
    meeting_date: str | None = None
    meeting_chair: str | None = None
    meeting_host: str | None = None
    concerned: tuple[str, ...] | None = None
    #: A citizens' petition's own metadata (node/documents/petitions.py): sealed, personal.
    petition: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("document", "message", PETITION_TYPE):
            raise ValueError(f"kind {self.kind!r} is not a clerk's document kind")
        if self.urgency not in URGENCY_PRIORITY:
            raise ValueError(f"urgency {self.urgency!r} is unknown")
        if self.confidentiality not in CONFIDENTIALITY_NAMES:
            raise ValueError(f"confidentiality {self.confidentiality!r} is unknown")

    @property
    def priority(self) -> int:
        return URGENCY_PRIORITY[self.urgency]

    def as_envelope_meta(self) -> dict[str, Any]:
        """The envelope ``meta`` object: fields that are set, plus kind and priority."""
        meta: dict[str, Any] = {"kind": self.kind, "urgency": self.urgency,
                                "confidentiality": self.confidentiality,
                                "priority": self.priority}
        for name in ("type", "number", "issuer", "date", "subject", "signer", "due",
                     "reply_to", "replaces", "period", "consolidated", "meeting", "meeting_date",
                     "meeting_chair", "meeting_host"):
            value = getattr(self, name)
            if value is not None:
                meta[name] = value
        if self.concerned is not None:
            meta["concerned"] = list(self.concerned)
        if self.petition is not None:
            # The subject and the petitioner travel only in the sealed ``petition`` object.
            meta.pop("subject", None)
            meta["petition"] = dict(self.petition)
        return meta


def parse_sidecar(data: bytes, *, name: str = "the sidecar") -> dict[str, Any]:
    """The TOML table in a sidecar's bytes, keys mapped to canonical names; raise MetadataError."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise _bad(Phrase("{name} is {size} bytes; a sidecar holds a few lines of metadata (at "
                          "most {limit} bytes)", name=name, size=len(data),
                          limit=MAX_SIDECAR_BYTES))
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _bad(Phrase("{name} is not UTF-8 text; save it as UTF-8", name=name)) from None
    except tomllib.TOMLDecodeError as exc:
        raise _bad(Phrase("{name} is not valid TOML ({error}); write one 'key = \"value\"' per "
                          "line, e.g. number = \"12-NQ/TU\"", name=name, error=exc)) from None
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = _FIELDS.get(lookup_key(key))
        if canonical is None:
            raise _bad(Phrase("{name} has unknown field {key!r}; the fields are: {fields}",
                              name=name, key=key, fields=", ".join(FIELD_NAMES)))
        if canonical in fields:
            raise _bad(Phrase("{name} gives the field {field!r} twice (as {key!r})", name=name,
                              field=canonical, key=key))
        fields[canonical] = value
    return fields


def _text(field: str, value: Any) -> str:
    limit = _TEXT_LIMITS[field]
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _bad(Phrase("{field}: expected text in quotes, got {value!r}", field=field,
                          value=value))
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not text:
        raise _bad(Phrase("{field}: is empty; remove the line or fill it in", field=field))
    if len(text) > limit:
        raise _bad(Phrase("{field}: is {count} characters; at most {limit} are allowed",
                          field=field, count=len(text), limit=limit))
    if any(unicodedata.category(c) in _FORBIDDEN for c in text):
        raise _bad(Phrase("{field}: contains control or invisible characters; type it again",
                          field=field))
    return text


def _date(field: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise _bad(Phrase("{field}: expected a date without a time, e.g. 2026-11-25, got "
                          "{value}", field=field, value=value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
            try:
                return dt.datetime.strptime(text, pattern).date().isoformat()
            except ValueError:
                continue
    raise _bad(Phrase("{field}: expected a date such as 2026-11-25 or 25/11/2026, got {value!r}",
                      field=field, value=value))


def _message_id(field: str, value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _MESSAGE_ID.fullmatch(text):
        raise _bad(Phrase("{field}: expected a message ID (32 hexadecimal characters, as shown "
                          "by 'lienthong status' or in the .meta.json of a document), got "
                          "{value!r}", field=field, value=value))
    return text


def _choice(field: str, value: Any, index: Mapping[str, str],
            table: Mapping[str, tuple[str, ...]], allowed: Iterable[str]) -> str:
    found = index.get(lookup_key(value)) if isinstance(value, str) else None
    if found is None:
        raise _bad(Phrase("{field}: {value!r} is not known; use one of: {allowed}", field=field,
                          value=value, allowed=_shown(table, allowed)))
    return found


def _period(field: str, value: Any) -> str:
    try:
        return str(parse_period(value if isinstance(value, str) else str(value)))
    except ValueError as exc:
        raise _bad(str(exc)) from None


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(Phrase("{field}: expected true or false (without quotes), got {value!r}",
                          field=field, value=value))
    return value


def _offices(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    names = [lookup_key(item) if isinstance(item, str) else "" for item in value] \
        if isinstance(value, list) else []
    if not names or not all(NAME_PATTERN.match(name) for name in names):
        raise _bad(Phrase("{field}: expected a list of office names, e.g. [\"hdnd\", "
                          "\"ubnd\"], got {value!r}", field=field, value=value))
    return tuple(dict.fromkeys(names))


def document_meta(fields: Mapping[str, Any], *, hint: str | None = None,
                  types: Iterable[str] = DEFAULT_DOCUMENT_TYPES, notation: str = "any",
                  lenient_numbers: bool = False) -> DocumentMeta:
    """Validate sidecar ``fields`` (canonical keys) merged with the folder ``hint``.

    The hint (``outbox/<peer>/<hint>/``) may name a document type or an urgency; a sidecar
    that says otherwise is an error rather than a silent choice between the two. The number
    must be in ``notation`` (any, state, party) and carry the type's code
    (node/documents/numbers.py) unless ``lenient_numbers``; a programme must name its period.
    """
    types = tuple(types)
    type_names = {name: TYPE_NAMES.get(name, ())
                  for name in (*types, MESSAGE_TYPE, PETITION_TYPE)}
    if fields.get("type") is not None and \
            type_index(types).get(lookup_key(str(fields["type"]))) == PETITION_TYPE:
        return _petition_meta(fields, hint=hint, types_by_key=type_index(types),
                              type_names=type_names)
    types_by_key = type_index(types)
    values: dict[str, Any] = {}
    for field, value in fields.items():
        if field == "type":
            values[field] = _choice(field, value, types_by_key, type_names, type_names)
        elif field == "urgency":
            values[field] = _choice(field, value, _URGENCY, URGENCY_NAMES, URGENCY_NAMES)
        elif field == "confidentiality":
            values[field] = _choice(field, value, _CONFIDENTIALITY, CONFIDENTIALITY_NAMES,
                                    CONFIDENTIALITY_NAMES)
        elif field in ("date", "due", "meeting_date"):
            values[field] = _date(field, value)
        elif field == "period":
            values[field] = _period(field, value)
        elif field == "consolidated":
            values[field] = _flag(field, value)
        elif field == "concerned":
            values[field] = _offices(field, value)
        elif field == "meeting_host":
            values[field] = _office(field, value)
        elif field in ("reply_to", "replaces"):
            values[field] = _message_id(field, value)
        elif field in _TEXT_LIMITS:
            values[field] = _text(field, value)
        elif field in PETITION_FIELD_NAMES:
            raise _bad(Phrase("{field}: only a citizens' petition (type = \"đơn thư\") carries "
                              "this field; set the type or remove the line", field=field))
        else:
            raise _bad(Phrase("unknown field {field!r}; the fields are: {fields}", field=field,
                              fields=", ".join(FIELD_NAMES)))
    if hint is not None:
        _merge_hint(values, hint, types_by_key, type_names)
    if values.get("type") == PETITION_TYPE:  # the folder made it a petition
        return _petition_meta(dict(fields, type=PETITION_TYPE), hint=hint,
                              types_by_key=types_by_key, type_names=type_names)
    if "date" in values and "due" in values and values["due"] < values["date"]:
        raise _bad(Phrase("due: {due} is before the document's date {date}", due=values["due"],
                          date=values["date"]))
    _check_coordination(values, notation=notation, lenient_numbers=lenient_numbers)
    kind = "message" if values.get("type") == MESSAGE_TYPE else "document"
    return DocumentMeta(kind=kind, **values)


def _petition_meta(fields: Mapping[str, Any], *, hint: str | None,
                   types_by_key: Mapping[str, str],
                   type_names: Mapping[str, tuple[str, ...]]) -> DocumentMeta:
    """A citizens' petition: its own fields checked by node/documents/petitions.py; nothing
    of a registered office document (number, issuer, signer...) that it does not have. No
    reason repeats a value (reasons reach the audit log)."""
    values: dict[str, Any] = {"type": PETITION_TYPE}
    own: dict[str, Any] = {}
    for field, value in fields.items():
        if field in PETITION_FIELD_NAMES or field == "subject":
            own[field] = value
        elif field not in _PETITION_ALSO:
            raise MetadataError("bad-petition", Phrase(
                "{field}: a citizens' petition does not carry this field; use its own fields "
                "(docs/petitions.md)", field=field), petition=True)
        elif field == "urgency":
            values[field] = _choice(field, value, _URGENCY, URGENCY_NAMES, URGENCY_NAMES)
        elif field == "confidentiality":
            values[field] = _choice(field, value, _CONFIDENTIALITY, CONFIDENTIALITY_NAMES,
                                    CONFIDENTIALITY_NAMES)
        elif field in ("reply_to", "replaces"):
            values[field] = _message_id(field, value)
    try:
        if hint is not None:
            _merge_hint(values, hint, types_by_key, type_names)
        if values["type"] != PETITION_TYPE:
            raise _bad(Phrase("type: the folder says another type than the sidecar's petition"))
        petition = petition_fields(own)
    except PetitionError as exc:
        raise MetadataError(exc.code, exc.reason_text, petition=True) from None
    except MetadataError as exc:
        raise MetadataError(exc.code, exc.reason_text, petition=True) from None
    return DocumentMeta(kind=PETITION_TYPE, petition=petition, **values)


def _merge_hint(values: dict[str, Any], hint: str, types_by_key: Mapping[str, str],
                type_names: Mapping[str, tuple[str, ...]]) -> None:
    key = lookup_key(hint)
    for field, index in (("type", types_by_key), ("urgency", _URGENCY)):
        found = index.get(key)
        if found is None:
            continue
        if field in values and values[field] != found:
            raise _bad(Phrase("{field}: the sidecar says {value!r} but the folder {hint!r} says "
                              "{found!r}; fix one of them", field=field, value=values[field],
                              hint=hint, found=found))
        values[field] = found
        return
    raise _bad(Phrase("the folder {hint!r} is neither a document type nor an urgency. Use a "
                      "type: {types}; or an urgency: {urgencies} (e.g. "
                      "outbox/<office>/nghi-quyet/)", hint=hint,
                      types=_shown(type_names, type_names),
                      urgencies=_shown(URGENCY_NAMES, URGENCY_NAMES)))


def not_allowed(confidentiality: str, peers: Iterable[str], *,
                allowed: Mapping[str, tuple[str, ...]],
                groups: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The peers ``[confidentiality]`` does not allow this class for, sending or receiving:
    a guarded class (secret, top-secret) must be listed under the peer's name or under a
    group the peer belongs to; the others need no permission."""
    if confidentiality not in GUARDED_CLASSES:
        return []
    refused = []
    for peer in peers:
        names = [peer] + [group for group, members in groups.items() if peer in members]
        if not any(confidentiality in allowed.get(name, ()) for name in names):
            refused.append(peer)
    return refused


def check_confidentiality(confidentiality: str, recipients: Iterable[str], *,
                          allowed: Mapping[str, tuple[str, ...]],
                          groups: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse a guarded class (secret, top-secret) unless allowed for every recipient.

    ``recipients`` are peer names. A class is allowed for a peer when ``[confidentiality]``
    lists it under the peer's name or under a group the peer belongs to.
    """
    refused = not_allowed(confidentiality, recipients, allowed=allowed, groups=groups)
    if refused:
        raise MetadataError("confidentiality-refused", Phrase(
            "confidentiality: this document is marked {code} ({name}), and this office is not "
            "allowed to send {code} documents to {offices}. Only classes normal and "
            "confidential may be sent without permission; the administrator can allow it in "
            "lienthong.toml, e.g. [confidentiality] {office} = [\"{code}\"]. Otherwise send it "
            "by the channel for secret documents.", code=confidentiality,
            name=CONFIDENTIALITY_NAMES[confidentiality][0], offices=", ".join(sorted(refused)),
            office=sorted(refused)[0]))


def _office(field: str, value: Any) -> str:
    name = lookup_key(value) if isinstance(value, str) else ""
    if not NAME_PATTERN.match(name):
        raise _bad(Phrase("{field}: expected the name of the one office that hosted the "
                          "meeting, e.g. \"tinhuy\", got {value!r}", field=field, value=value))
    return name


def _check_coordination(values: dict[str, Any], *, notation: str,
                        lenient_numbers: bool) -> None:
    """The rules of docs/coordination.md: fields that belong to one type, a programme's
    period, and the number's notation and type code."""
    doc_type = values.get("type")
    for field, owner in _ONLY_FOR.items():
        if field in values and doc_type != owner:
            raise _bad(Phrase("{field}: only a {owner} ({name}) carries this field, but this "
                              "document's type is {type}; set type = \"{name}\" or remove the "
                              "line", field=field, owner=owner, name=TYPE_NAMES[owner][0],
                              type=doc_type or "not given"))
    if doc_type == "programme" and "period" not in values:
        raise _bad(Phrase("period: a programme (chương trình) must name the period it covers, "
                          "e.g. period = \"2027\", \"2027-Q1\", \"2027-01\" or \"2027-W05\""))
    if "number" in values and not lenient_numbers:
        try:
            values["number"] = check_number(values["number"], doc_type, notation=notation)
        except NumberError as exc:
            raise MetadataError("bad-number", str(exc)) from None


def check_conclusion(meta: DocumentMeta, *, own_name: str, recipients: Iterable[str]) -> None:
    """A meeting's conclusion goes from the office that hosted the meeting to exactly the
    offices concerned (docs/coordination.md): refuse it otherwise, naming what to change."""
    if meta.type != "conclusion":
        return
    if meta.meeting_host is not None and meta.meeting_host != own_name:
        raise _bad(Phrase("meeting_host: the meeting was hosted by {host}, so {host} sends its "
                          "conclusion, not this office ({own}); correct meeting_host or let "
                          "the hosting office send it", host=meta.meeting_host, own=own_name))
    if meta.concerned is None:
        return
    wanted, going = set(meta.concerned) - {own_name}, set(recipients)
    if wanted != going:
        missing = ", ".join(sorted(wanted - going)) or "none"
        extra = ", ".join(sorted(going - wanted)) or "none"
        raise _bad(Phrase("concerned: the conclusion must go to exactly the offices concerned "
                          "({wanted}), but this folder sends it to {going} (missing: "
                          "{missing}; not concerned: {extra}); put it in a group folder of "
                          "exactly those offices, or use 'lienthong send --to' with their names",
                          wanted=", ".join(sorted(wanted)), going=", ".join(sorted(going)),
                          missing=missing, extra=extra))
