"""Citizens' petitions (đơn thư): their metadata, checked; their opaque reference (pure).

Theory of operation
-------------------
A petition is a document of type ``petition`` (đơn thư) whose sidecar carries, besides the
urgency and confidentiality every document may have, the petition's own fields: sub-kind
(complaint, denunciation, recommendation, reflection), petition number, received date,
channel, the petitioner (name, address, ID number: personal data), subject, the office
handling it and the related previous petitions (docs/petitions.md §2).

:func:`petition_fields` validates them into the ``petition`` object of the envelope's
``meta``; the envelope is sealed as v3, so that object travels only inside the sealed part
(node/spool/sealing.py). The same function checks what a peer sends (:func:`read_petition`):
a peer's petition is as untrusted as a clerk's sidecar.

Nothing personal may reach a log, the status, the console, metrics or the audit log
(docs/petitions.md §5). Every place outside the restricted folder and the register names a
petition by :func:`petition_reference` only; the file itself travels and is kept under
:func:`opaque_file_name`, its real name inside the sealed ``petition`` object, and what the
store keeps beside a dispatch or a received row is :func:`public_meta`. Refusal reasons here
never repeat a value the clerk typed (they go into the audit log).

Pure: no I/O, no clock.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from lienthong.config.schema import NAME_PATTERN
from lienthong.node.core.errors import NodeError
from lienthong.node.language.text import Phrase

#: The document type, and the envelope ``meta.kind``, of a petition.
PETITION_TYPE = "petition"
PETITION_TYPE_NAMES = ("đơn thư", "đơn", "don-thu")

#: Sub-kinds, with the Vietnamese names clerks write.
PETITION_KIND_NAMES: Mapping[str, tuple[str, ...]] = {
    "complaint": ("khiếu nại",),
    "denunciation": ("tố cáo",),
    "recommendation": ("kiến nghị",),
    "reflection": ("phản ánh",),
}
#: How the office received it from the citizen.
CHANNEL_NAMES: Mapping[str, tuple[str, ...]] = {
    "in-person": ("trực tiếp", "tiếp công dân"),
    "post": ("bưu chính", "qua bưu điện", "thư"),
    "online": ("trực tuyến", "qua mạng", "cổng dịch vụ công"),
}
#: Sidecar keys of a petition (canonical -> unaccented Vietnamese spellings).
PETITION_FIELD_NAMES: Mapping[str, tuple[str, ...]] = {
    "petition_kind": ("loai_don", "phan_loai_don"),
    "petition_number": ("so_don",),
    "received": ("ngay_nhan", "ngay_nhan_don"),
    "channel": ("hinh_thuc_nhan", "kenh_nhan"),
    "petitioner": ("nguoi_viet_don", "nguoi_gui_don", "ho_ten"),
    "petitioner_address": ("dia_chi", "dia_chi_nguoi_viet_don"),
    "petitioner_id": ("so_giay_to", "so_cccd", "cccd"),
    "handling_office": ("co_quan_giai_quyet", "co_quan_xu_ly"),
    "related": ("don_lien_quan",),
}
_LIMITS = {"petition_number": 64, "petitioner": 200, "petitioner_address": 500,
           "petitioner_id": 32, "subject": 1000, "related": 64}
_MAX_RELATED = 50
#: Markup is refused outright in a petition (it is shown in pages and a spreadsheet), as are
#: control and invisible characters.
_MARKUP = re.compile(r"[<>]")
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ID_NUMBER = re.compile(r"[0-9A-Za-z]{6,32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")
_SEPARATORS = re.compile(r"[\s_\-]+")


#: The only notes a status about a petition may carry: a note travels to the other office
#: and into both audit logs, so nothing a clerk types about the citizen goes with it
#: (node/petitions/decisions.py).
PETITION_STATUS_NOTES = ("", "Đã thụ lý đơn", "Không thụ lý đơn", "Đã giải quyết đơn")


class PetitionError(NodeError):
    """A petition's metadata that will not be sent or accepted; ``reason`` names the field
    and never repeats its value. ``code``: ``bad-petition``, or ``petition-not-allowed``
    for a peer the configuration does not allow petitions with."""

    code = "bad-petition"

    def __init__(self, reason: str | Phrase, *, code: str = "bad-petition") -> None:
        super().__init__(reason)
        self.code = code
        #: The reason as a clerk reads it, translated where it is written (the reason file).
        self.reason_text = reason
        self.reason = str(reason)


def _key(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip().lower().replace("đ", "d")
    stripped = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    return _SEPARATORS.sub("-", stripped).strip("-")


def _index(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {_key(name): canonical for canonical, names in table.items()
            for name in (canonical, *names)}


_KINDS = _index(PETITION_KIND_NAMES)
_CHANNELS = _index(CHANNEL_NAMES)


def _shown(table: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{name} ({names[0]})" for name, names in table.items())


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise PetitionError(Phrase("{field}: expected text in quotes", field=field))
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not text:
        raise PetitionError(Phrase("{field}: is empty; remove the line or fill it in",
                                   field=field))
    if len(text) > _LIMITS[field]:
        raise PetitionError(Phrase("{field}: is {length} characters; at most {most} are "
                                   "allowed", field=field, length=len(text),
                                   most=_LIMITS[field]))
    if any(unicodedata.category(c) in _FORBIDDEN for c in text):
        raise PetitionError(Phrase("{field}: contains control or invisible characters; "
                                   "type it again", field=field))
    if _MARKUP.search(text):
        raise PetitionError(Phrase("{field}: contains the characters < or >, which a petition "
                                   "may not carry (they could be read as markup); remove them",
                                   field=field))
    return text


def _date(field: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise PetitionError(Phrase("{field}: expected a date without a time, e.g. 2026-11-25",
                                   field=field))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
            try:
                return dt.datetime.strptime(value.strip(), pattern).date().isoformat()
            except ValueError:
                continue
    raise PetitionError(Phrase("{field}: expected a date such as 2026-11-25 or 25/11/2026",
                               field=field))


def _choice(field: str, value: Any, index: Mapping[str, str],
            table: Mapping[str, tuple[str, ...]]) -> str:
    found = index.get(_key(value)) if isinstance(value, str) else None
    if found is None:
        raise PetitionError(Phrase("{field}: is not known; use one of: {choices}", field=field,
                                   choices=_shown(table)))
    return found


def _office(field: str, value: Any) -> str:
    name = _key(value) if isinstance(value, str) else ""
    if not NAME_PATTERN.match(name):
        raise PetitionError(Phrase("{field}: expected the short name of an office, e.g. \"ubnd\"",
                                   field=field))
    return name


def _related(field: str, value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > _MAX_RELATED:
        raise PetitionError(Phrase("{field}: expected a list of up to {most} petition numbers, "
                                   "e.g. [\"15/ĐKN\"]", field=field, most=_MAX_RELATED))
    return list(dict.fromkeys(_text(field, item) for item in items))


def petition_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The validated ``petition`` object of ``meta`` from sidecar ``fields`` (canonical keys:
    the petition's own and ``subject``); raise PetitionError.

    The petitioner's name and the received date are required: a petition without them cannot
    be registered, nor its time limits counted."""
    if "petitioner" not in fields:
        raise PetitionError(Phrase("petitioner: a petition must give the petitioner's name "
                                   "(người viết đơn)"))
    if "received" not in fields:
        raise PetitionError(Phrase("received: a petition must give the date the office "
                                   "received it (ngày nhận đơn)"))
    petition: dict[str, Any] = {
        "kind": _choice("petition_kind", fields.get("petition_kind", "complaint"), _KINDS,
                        PETITION_KIND_NAMES),
        "received": _date("received", fields["received"]),
        "petitioner": {"name": _text("petitioner", fields["petitioner"])},
    }
    if "channel" in fields:
        petition["channel"] = _choice("channel", fields["channel"], _CHANNELS, CHANNEL_NAMES)
    if "petition_number" in fields:
        petition["number"] = _text("petition_number", fields["petition_number"])
    if "petitioner_address" in fields:
        petition["petitioner"]["address"] = _text("petitioner_address",
                                                  fields["petitioner_address"])
    if "petitioner_id" in fields:
        id_number = _text("petitioner_id", fields["petitioner_id"])
        if not _ID_NUMBER.fullmatch(id_number):
            raise PetitionError(Phrase("petitioner_id: expected an ID card or passport number "
                                       "(6 to 32 letters and digits)"))
        petition["petitioner"]["id_number"] = id_number
    if "subject" in fields:
        petition["subject"] = _text("subject", fields["subject"])
    if "handling_office" in fields:
        petition["handling_office"] = _office("handling_office", fields["handling_office"])
    if "related" in fields:
        petition["related"] = _related("related", fields["related"])
    if "file_name" in fields:
        petition["file_name"] = _file_name(fields["file_name"])
    return petition


def _file_name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or "/" in value \
            or value in (".", "..") or any(unicodedata.category(c) in _FORBIDDEN
                                           for c in value):
        raise PetitionError(Phrase("file_name: is not a plain file name"))
    return unicodedata.normalize("NFC", value)


def read_petition(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``petition`` object of a peer's envelope ``meta``, checked as strictly as a clerk's
    sidecar; raise PetitionError (the receiver refuses the offer)."""
    raw = meta.get("petition")
    if not isinstance(raw, Mapping):
        raise PetitionError(Phrase("the envelope of a petition carries no petition metadata"))
    person = raw.get("petitioner")
    if not isinstance(person, Mapping):
        raise PetitionError(Phrase("petitioner: missing"))
    fields: dict[str, Any] = {"petition_kind": raw.get("kind"), "petitioner": person.get("name"),
                              "received": raw.get("received")}
    for key, field in (("number", "petition_number"), ("channel", "channel"),
                       ("subject", "subject"), ("handling_office", "handling_office"),
                       ("related", "related"), ("file_name", "file_name")):
        if key in raw:
            fields[field] = raw[key]
    for key, field in (("address", "petitioner_address"), ("id_number", "petitioner_id")):
        if key in person:
            fields[field] = person[key]
    if any(value is None for value in fields.values()):
        raise PetitionError(Phrase("a petition field is empty"))
    unknown = set(raw) - {"kind", "received", "petitioner", "number", "channel", "subject",
                          "handling_office", "related", "file_name"}
    if unknown or set(person) - {"name", "address", "id_number"}:
        raise PetitionError(Phrase("the petition metadata has fields this office does not "
                                   "know"))
    return petition_fields(fields)


def petition_reference(message_id: str) -> str:
    """The opaque name of a petition outside the restricted folder and the register: it
    says nothing about the citizen or the subject."""
    return f"petition-{message_id[:12]}"


def opaque_file_name(message_id: str, name: str) -> str:
    """The name a petition's file travels and is kept under (its extension kept, so it still
    opens); the real name travels sealed, in ``petition.file_name``."""
    extension = "".join(name.rpartition(".")[1:]) if "." in name else ""
    if not _EXTENSION.fullmatch(extension):
        extension = ""
    return petition_reference(message_id) + extension.lower()


def is_petition(meta: Mapping[str, Any] | None) -> bool:
    return isinstance(meta, Mapping) and meta.get("kind") == PETITION_TYPE


def public_meta(meta: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    """What may be kept and shown outside the restricted folder and the register: a
    petition's envelope ``meta`` without its ``petition`` object, named by its reference."""
    if not is_petition(meta):
        return dict(meta)
    kept = {key: value for key, value in meta.items()
            if key in ("kind", "urgency", "confidentiality", "priority", "reply_to")}
    kept["petition_ref"] = petition_reference(message_id)
    return kept


def allowed_peers(peers: Iterable[str], groups: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The peer names ``[petitions] peers`` allows: named, or a member of a named group."""
    allowed: set[str] = set()
    for name in peers:
        allowed.update(groups.get(name, (name,)))
    return frozenset(allowed)


def check_petition_peers(recipients: Iterable[str], *, peers: Iterable[str],
                         groups: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse a petition to any recipient not allowed for petitions (``[petitions] peers``)."""
    allowed = allowed_peers(peers, groups)
    refused = sorted(set(recipients) - allowed)
    if refused:
        if not allowed:
            raise PetitionError(Phrase(
                "this office may not send citizens' petitions to {refused}: it is allowed to "
                "send them to no office ([petitions] peers in lienthong.toml). Ask the "
                "administrator.", refused=", ".join(refused)), code="petition-not-allowed")
        raise PetitionError(Phrase(
            "this office may not send citizens' petitions to {refused}: only to {allowed} "
            "([petitions] peers in lienthong.toml). Send it to an office allowed for "
            "petitions, or ask the administrator.", refused=", ".join(refused),
            allowed=", ".join(sorted(allowed))), code="petition-not-allowed")
