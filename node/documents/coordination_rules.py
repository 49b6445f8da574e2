"""The rules of docs/coordination.md a document's metadata must keep (pure): fields that
belong to one type (a programme's period, a conclusion's meeting), a programme's period, the
number's notation and type code, and where a meeting's conclusion may go."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from lienthong.node.documents.metadata_error import MetadataError, refusal
from lienthong.node.documents.numbers import NumberError, check_number
from lienthong.node.documents.petitions import PETITION_FIELD_NAMES, PETITION_TYPE
from lienthong.node.documents.vocabulary import TYPE_NAMES
from lienthong.node.language.text import Phrase


class ConclusionFields(Protocol):
    """What ``check_conclusion`` reads of a ``DocumentMeta`` (metadata.py, which imports this
    module to check its fields, so this one names the fields rather than the class)."""

    @property
    def type(self) -> str | None: ...

    @property
    def meeting_host(self) -> str | None: ...

    @property
    def concerned(self) -> tuple[str, ...] | None: ...


#: Fields only one type of document may carry.
_ONLY_FOR = {"period": "programme", "consolidated": "programme", "meeting": "conclusion",
             "meeting_date": "conclusion", "meeting_chair": "conclusion",
             "meeting_host": "conclusion", "concerned": "conclusion",
             **dict.fromkeys(PETITION_FIELD_NAMES, PETITION_TYPE)}


def check_coordination(values: dict[str, Any], *, notation: str,
                       lenient_numbers: bool) -> None:
    """The rules of docs/coordination.md: fields that belong to one type, a programme's
    period, and the number's notation and type code."""
    doc_type = values.get("type")
    for field, owner in _ONLY_FOR.items():
        if field in values and doc_type != owner:
            raise refusal(Phrase("{field}: only a {owner} ({name}) carries this field, but this "
                                 "document's type is {type}; set type = \"{name}\" or remove the "
                                 "line", field=field, owner=owner, name=TYPE_NAMES[owner][0],
                                 type=doc_type or "not given"))
    if doc_type == "programme" and "period" not in values:
        raise refusal(Phrase("period: a programme (chương trình) must name the period it covers, "
                             "e.g. period = \"2027\", \"2027-Q1\", \"2027-01\" or \"2027-W05\""))
    if "number" in values and not lenient_numbers:
        try:
            values["number"] = check_number(values["number"], doc_type, notation=notation)
        except NumberError as exc:
            raise MetadataError("bad-number", str(exc)) from None


def check_conclusion(meta: ConclusionFields, *, own_name: str, recipients: Iterable[str]) -> None:
    """A meeting's conclusion goes from the office that hosted the meeting to exactly the
    offices concerned (docs/coordination.md): refuse it otherwise, naming what to change."""
    if meta.type != "conclusion":
        return
    if meta.meeting_host is not None and meta.meeting_host != own_name:
        raise refusal(Phrase("meeting_host: the meeting was hosted by {host}, so {host} sends its "
                             "conclusion, not this office ({own}); correct meeting_host or let "
                             "the hosting office send it", host=meta.meeting_host, own=own_name))
    if meta.concerned is None:
        return
    wanted, going = set(meta.concerned) - {own_name}, set(recipients)
    if wanted != going:
        missing = ", ".join(sorted(wanted - going)) or "none"
        extra = ", ".join(sorted(going - wanted)) or "none"
        raise refusal(Phrase("concerned: the conclusion must go to exactly the offices concerned "
                             "({wanted}), but this folder sends it to {going} (missing: "
                             "{missing}; not concerned: {extra}); put it in a group folder of "
                             "exactly those offices, or use 'lienthong send --to' with their names",
                             wanted=", ".join(sorted(wanted)), going=", ".join(sorted(going)),
                             missing=missing, extra=extra))
