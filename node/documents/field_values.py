"""The value of one sidecar field, checked and made canonical: text, dates, message IDs,
choices from a vocabulary table, periods, flags and office names (pure). Each refuses a bad
value with a :class:`MetadataError` that names the field and what is allowed."""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from lienthong.config.schema import NAME_PATTERN
from lienthong.node.documents.metadata_error import refusal
from lienthong.node.documents.periods import parse_period
from lienthong.node.documents.vocabulary import lookup_key, shown_names
from lienthong.node.language.text import Phrase

#: The longest text each free-text field may hold.
TEXT_LIMITS = {"number": 64, "issuer": 200, "subject": 1000, "signer": 100, "meeting": 500,
               "meeting_chair": 100}
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def text_field(field: str, value: Any) -> str:
    limit = TEXT_LIMITS[field]
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise refusal(Phrase("{field}: expected text in quotes, got {value!r}", field=field,
                             value=value))
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not text:
        raise refusal(Phrase("{field}: is empty; remove the line or fill it in", field=field))
    if len(text) > limit:
        raise refusal(Phrase("{field}: is {count} characters; at most {limit} are allowed",
                             field=field, count=len(text), limit=limit))
    if any(unicodedata.category(c) in _FORBIDDEN for c in text):
        raise refusal(Phrase("{field}: contains control or invisible characters; type it again",
                             field=field))
    return text


def date_field(field: str, value: Any) -> str:
    if isinstance(value, dt.datetime):
        raise refusal(Phrase("{field}: expected a date without a time, e.g. 2026-11-25, got "
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
    raise refusal(Phrase("{field}: expected a date such as 2026-11-25 or 25/11/2026, got {value!r}",
                         field=field, value=value))


def message_id_field(field: str, value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _MESSAGE_ID.fullmatch(text):
        raise refusal(Phrase("{field}: expected a message ID (32 hexadecimal characters, as shown "
                             "by 'lienthong status' or in the .meta.json of a document), got "
                             "{value!r}", field=field, value=value))
    return text


def choice_field(field: str, value: Any, index: Mapping[str, str],
                 table: Mapping[str, tuple[str, ...]], allowed: Iterable[str]) -> str:
    found = index.get(lookup_key(value)) if isinstance(value, str) else None
    if found is None:
        raise refusal(Phrase("{field}: {value!r} is not known; use one of: {allowed}", field=field,
                             value=value, allowed=shown_names(table, allowed)))
    return found


def period_field(field: str, value: Any) -> str:
    try:
        return str(parse_period(value if isinstance(value, str) else str(value)))
    except ValueError as exc:
        raise refusal(str(exc)) from None


def flag_field(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise refusal(Phrase("{field}: expected true or false (without quotes), got {value!r}",
                             field=field, value=value))
    return value


def offices_field(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    names = [lookup_key(item) if isinstance(item, str) else "" for item in value] \
        if isinstance(value, list) else []
    if not names or not all(NAME_PATTERN.match(name) for name in names):
        raise refusal(Phrase("{field}: expected a list of office names, e.g. [\"hdnd\", "
                             "\"ubnd\"], got {value!r}", field=field, value=value))
    return tuple(dict.fromkeys(names))

def office_field(field: str, value: Any) -> str:
    name = lookup_key(value) if isinstance(value, str) else ""
    if not NAME_PATTERN.match(name):
        raise refusal(Phrase("{field}: expected the name of the one office that hosted the "
                             "meeting, e.g. \"tinhuy\", got {value!r}", field=field, value=value))
    return name
