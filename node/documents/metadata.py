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

This module parses a sidecar and turns its fields into a :class:`DocumentMeta` (a citizens'
petition's too); the words it accepts are node/documents/vocabulary.py's, each field's value
is checked by node/documents/field_values.py, the rules of coordination by
node/documents/coordination_rules.py, and the confidentiality rule is
node/documents/confidentiality.py's.

Pure: no I/O, no clock. Reading the sidecar file is node/outbox/sidecars.py's job.
"""
from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.config.schema import DEFAULT_DOCUMENT_TYPES
from lienthong.node.documents.coordination_rules import check_coordination
from lienthong.node.documents.field_values import (
    TEXT_LIMITS,
    choice_field,
    date_field,
    flag_field,
    message_id_field,
    office_field,
    offices_field,
    period_field,
    text_field,
)
from lienthong.node.documents.metadata_error import MetadataError, refusal
from lienthong.node.documents.petitions import (
    PETITION_FIELD_NAMES,
    PETITION_TYPE,
    PetitionError,
    petition_fields,
)
from lienthong.node.documents.vocabulary import (
    CONFIDENTIALITY_BY_KEY,
    CONFIDENTIALITY_NAMES,
    FIELD_BY_KEY,
    FIELD_NAMES,
    MESSAGE_TYPE,
    TYPE_NAMES,
    URGENCY_BY_KEY,
    URGENCY_NAMES,
    URGENCY_PRIORITY,
    lookup_key,
    shown_names,
    type_index,
)
from lienthong.node.language.text import Phrase

SIDECAR_SUFFIX = ".meta.toml"
MAX_SIDECAR_BYTES = 64 * 1024
#: A short message (``lienthong message`` or a .txt with type = "message") is at most this.
MAX_MESSAGE_BYTES = 64 * 1024
#: What a petition may carry besides its own fields (docs/petitions.md §2).
_PETITION_ALSO = frozenset({"type", "urgency", "confidentiality", "subject", "reply_to",
                            "replaces"})


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
        raise refusal(Phrase("{name} is {size} bytes; a sidecar holds a few lines of metadata (at "
                             "most {limit} bytes)", name=name, size=len(data),
                             limit=MAX_SIDECAR_BYTES))
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise refusal(Phrase("{name} is not UTF-8 text; save it as UTF-8", name=name)) from None
    except tomllib.TOMLDecodeError as exc:
        raise refusal(Phrase("{name} is not valid TOML ({error}); write one 'key = \"value\"' per "
                             "line, e.g. number = \"12-NQ/TU\"", name=name, error=exc)) from None
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = FIELD_BY_KEY.get(lookup_key(key))
        if canonical is None:
            raise refusal(Phrase("{name} has unknown field {key!r}; the fields are: {fields}",
                                 name=name, key=key, fields=", ".join(FIELD_NAMES)))
        if canonical in fields:
            raise refusal(Phrase("{name} gives the field {field!r} twice (as {key!r})", name=name,
                                 field=canonical, key=key))
        fields[canonical] = value
    return fields



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
            values[field] = choice_field(field, value, types_by_key, type_names, type_names)
        elif field == "urgency":
            values[field] = choice_field(field, value, URGENCY_BY_KEY, URGENCY_NAMES, URGENCY_NAMES)
        elif field == "confidentiality":
            values[field] = choice_field(field, value, CONFIDENTIALITY_BY_KEY,
                                         CONFIDENTIALITY_NAMES, CONFIDENTIALITY_NAMES)
        elif field in ("date", "due", "meeting_date"):
            values[field] = date_field(field, value)
        elif field == "period":
            values[field] = period_field(field, value)
        elif field == "consolidated":
            values[field] = flag_field(field, value)
        elif field == "concerned":
            values[field] = offices_field(field, value)
        elif field == "meeting_host":
            values[field] = office_field(field, value)
        elif field in ("reply_to", "replaces"):
            values[field] = message_id_field(field, value)
        elif field in TEXT_LIMITS:
            values[field] = text_field(field, value)
        elif field in PETITION_FIELD_NAMES:
            raise refusal(Phrase("{field}: only a citizens' petition (type = \"đơn thư\") carries "
                                 "this field; set the type or remove the line", field=field))
        else:
            raise refusal(Phrase("unknown field {field!r}; the fields are: {fields}", field=field,
                                 fields=", ".join(FIELD_NAMES)))
    if hint is not None:
        _merge_hint(values, hint, types_by_key, type_names)
    if values.get("type") == PETITION_TYPE:  # the folder made it a petition
        return _petition_meta(dict(fields, type=PETITION_TYPE), hint=hint,
                              types_by_key=types_by_key, type_names=type_names)
    if "date" in values and "due" in values and values["due"] < values["date"]:
        raise refusal(Phrase("due: {due} is before the document's date {date}", due=values["due"],
                             date=values["date"]))
    check_coordination(values, notation=notation, lenient_numbers=lenient_numbers)
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
            values[field] = choice_field(field, value, URGENCY_BY_KEY, URGENCY_NAMES, URGENCY_NAMES)
        elif field == "confidentiality":
            values[field] = choice_field(field, value, CONFIDENTIALITY_BY_KEY,
                                         CONFIDENTIALITY_NAMES, CONFIDENTIALITY_NAMES)
        elif field in ("reply_to", "replaces"):
            values[field] = message_id_field(field, value)
    try:
        if hint is not None:
            _merge_hint(values, hint, types_by_key, type_names)
        if values["type"] != PETITION_TYPE:
            raise refusal(Phrase("type: the folder says another type than the sidecar's petition"))
        petition = petition_fields(own)
    except PetitionError as exc:
        raise MetadataError(exc.code, exc.reason_text, petition=True) from None
    except MetadataError as exc:
        raise MetadataError(exc.code, exc.reason_text, petition=True) from None
    return DocumentMeta(kind=PETITION_TYPE, petition=petition, **values)


def _merge_hint(values: dict[str, Any], hint: str, types_by_key: Mapping[str, str],
                type_names: Mapping[str, tuple[str, ...]]) -> None:
    key = lookup_key(hint)
    for field, index in (("type", types_by_key), ("urgency", URGENCY_BY_KEY)):
        found = index.get(key)
        if found is None:
            continue
        if field in values and values[field] != found:
            raise refusal(Phrase("{field}: the sidecar says {value!r} but the folder {hint!r} says "
                                 "{found!r}; fix one of them", field=field, value=values[field],
                                 hint=hint, found=found))
        values[field] = found
        return
    raise refusal(Phrase("the folder {hint!r} is neither a document type nor an urgency. Use a "
                         "type: {types}; or an urgency: {urgencies} (e.g. "
                         "outbox/<office>/nghi-quyet/)", hint=hint,
                         types=shown_names(type_names, type_names),
                         urgencies=shown_names(URGENCY_NAMES, URGENCY_NAMES)))
