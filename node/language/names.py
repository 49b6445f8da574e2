"""The names a clerk reads for the node's codes, and dates as offices write them.

The codes (``resolution``, ``flash``, ``registered``...) are what the node stores, signs and
sends; a clerk reads ``Nghị quyết``, ``Hỏa tốc``, ``Đã vào sổ``. Each table maps a code to an
English msgid; the Vietnamese is in the catalog like every other string. An unknown code (a
newer peer's) is shown as it is, never dropped. A period code (``2027-Q1``) reads as offices
write it (``Quý I/2027``, ``Q1 2027``), a date as dd/mm/yyyy.
"""
from __future__ import annotations

import datetime as dt
import re

from babel.dates import format_date, format_datetime

from lienthong.node.language.catalog import checked_language, translate
from lienthong.node.language.text import Phrase, _, shown

DOCUMENT_TYPES = {
    "resolution": _("Resolution"), "decision": _("Decision"), "directive": _("Directive"),
    "report": _("Report"), "programme": _("Programme"), "conclusion": _("Conclusion"),
    "announcement": _("Announcement"), "publication": _("Publication"),
    "letter": _("Official letter"), "other": _("Other document"), "message": _("Message"),
    "petition": _("Citizens' petition"),
}
URGENCIES = {"normal": _("Normal"), "urgent": _("Urgent"), "very-urgent": _("Very urgent"),
             "flash": _("Flash")}
CONFIDENTIALITY = {"normal": _("Not classified"), "confidential": _("Confidential"),
                   "secret": _("Secret"), "top-secret": _("Top secret")}
#: Processing statuses a recipient reports (``lienthong mark``).
STATUSES = {"registered": _("Registered"), "assigned": _("Assigned"),
            "in-progress": _("In progress"), "completed": _("Completed"),
            "rejected": _("Rejected")}
#: Where a document is on its way (dispatch and delivery states, recalls).
STATES = {"sending": _("Sending"), "sent": _("Sent"), "failed": _("Failed"),
          "waiting": _("Waiting to be delivered"), "queued": _("Waiting to be delivered"),
          "delivered": _("Delivered, receipt verified"), "stored": _("Received"),
          "publishing": _("Being received"), "refused": _("Refused"),
          "requested": _("Recall requested"), "accepted": _("Recall accepted"),
          "trusted": _("Trusted"), "revoked": _("Revoked"), "pending": _("Pending"),
          "ok": _("Working normally"), "warning": _("Needs attention"),
          "error": _("Not working"), "critical": _("Needs attention at once")}
#: What a deadline row is for (node/coordination/deadlines.py: a programme's period kind, a
#: document with a due date, a meeting's conclusion to register).
DEADLINE_KINDS = {"annual": _("Annual programme"), "quarterly": _("Quarterly programme"),
                  "monthly": _("Monthly programme"), "weekly": _("Weekly programme"),
                  "document": _("Document with a due date"),
                  "conclusion": _("Meeting conclusion")}
#: A deadline's state (node/coordination/obligations.py), also a petition's time limit's.
DEADLINE_STATES = {"on-time": _("On time"), "late": _("Late"), "due": _("Not yet due"),
                   "overdue": _("Overdue"), "missing": _("Missing")}
#: The kinds of citizens' petitions (node/documents/petitions.py).
PETITION_KINDS = {"complaint": _("Complaint"), "denunciation": _("Denunciation"),
                  "recommendation": _("Recommendation"), "reflection": _("Feedback")}
#: Where a petition is in the register (node/petitions/register.py).
PETITION_STATES = {"received": _("Received, not yet decided"),
                   "accepted": _("Accepted for resolution"),
                   "rejected": _("Not accepted"), "resolved": _("Resolved"),
                   "forwarded": _("Forwarded"), "taken-over": _("Taken over by the office"),
                   "refused": _("Refused by the office")}
#: How a peer was last found reachable or not (node/status/snapshot.py ``reachable``).
REACHABILITY_SOURCES = {"connected now": _("connected now"),
                        "test": _("connection test"), "connection": _("last connection")}
#: The kinds of a peer's keys (keys/directory.py).
KEY_KINDS = {"identity": _("identity key"), "tls": _("TLS key"),
             "encryption": _("encryption key")}
TABLES = {"type": DOCUMENT_TYPES, "urgency": URGENCIES, "confidentiality": CONFIDENTIALITY,
          "status": STATUSES, "state": STATES, "deadline_kind": DEADLINE_KINDS,
          "deadline_state": DEADLINE_STATES, "petition_kind": PETITION_KINDS,
          "petition_state": PETITION_STATES, "reachability": REACHABILITY_SOURCES,
          "key_kind": KEY_KINDS}


def name_of(table: str, code: object, language: str) -> str:
    """The clerk's word for ``code`` in one of ``TABLES`` (the code itself if unknown)."""
    text = "" if code is None else str(code)
    msgid = TABLES[table].get(text)
    return translate(language, msgid) if msgid is not None else text


def _parse(value: str | dt.date | dt.datetime) -> dt.date | dt.datetime | None:
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def show_date(value: str | dt.date | dt.datetime | None, language: str) -> str:
    """A date as offices write it: dd/mm/yyyy (in both languages: it is the offices' form)."""
    if value is None or value == "":
        return ""
    parsed = _parse(value)
    if parsed is None:
        return str(value)
    day = parsed.date() if isinstance(parsed, dt.datetime) else parsed
    return format_date(day, "dd/MM/yyyy", locale=checked_language(language))


def show_time(value: str | dt.datetime | None, language: str,
              tz: dt.tzinfo | None = None) -> str:
    """An RFC 3339 time as dd/mm/yyyy HH:MM in the node's local time zone."""
    if value is None or value == "":
        return ""
    parsed = _parse(value)
    if not isinstance(parsed, dt.datetime):
        return show_date(value, language) if parsed is not None else str(value)
    local = parsed.astimezone(tz) if parsed.tzinfo is not None else parsed
    return format_datetime(local, "dd/MM/yyyy HH:mm", locale=checked_language(language))


_PERIOD_FORMS = (("annual", re.compile(r"(\d{4})")),
                 ("quarterly", re.compile(r"(\d{4})-[Qq]([1-4])")),
                 ("monthly", re.compile(r"(\d{4})-(0[1-9]|1[0-2])")),
                 ("weekly", re.compile(r"(\d{4})-[Ww](0[1-9]|[1-4]\d|5[0-3])")))
#: A quarter and a month as offices write them, one msgid each ("Quý I/{year}" and
#: "Tháng 01/{year}" in Vietnamese, "Q1 {year}" and "January {year}" in English).
QUARTERS = (_("Q1 {year}"), _("Q2 {year}"), _("Q3 {year}"), _("Q4 {year}"))
MONTHS = (_("January {year}"), _("February {year}"), _("March {year}"), _("April {year}"),
          _("May {year}"), _("June {year}"), _("July {year}"), _("August {year}"),
          _("September {year}"), _("October {year}"), _("November {year}"),
          _("December {year}"))


def period_phrase(code: object) -> Phrase | str:
    """A period code (node/documents/periods.py: ``2027``, ``2027-Q1``, ``2027-01``,
    ``2027-W05``; a reconciliation's day ``2027-01-31``) as a Phrase that reads as offices
    write it in either language; anything else is returned as it is, never dropped.

    A Phrase rather than a string so that a sentence carrying it (a status warning) is said in
    the language of whoever reads it; ``show_period`` is the string for one language.
    """
    text = "" if code is None else str(code).strip()
    for kind, pattern in _PERIOD_FORMS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        year = int(found.group(1))
        if kind == "annual":
            return Phrase("Year {year}", year=year)
        number = int(found.group(2))
        if kind == "quarterly":
            return Phrase(QUARTERS[number - 1], year=year)
        if kind == "monthly":
            return Phrase(MONTHS[number - 1], year=year)
        return Phrase("Week {week} of {year}", week=f"{number:02d}", year=year)
    if len(text) == 10 and _parse(text) is not None:
        return show_date(text, "vi")  # a day: dd/mm/yyyy in both languages
    return text


def show_period(code: object, language: str) -> str:
    """A period code as offices write it in ``language`` ("Quý I/2027", "Q1 2027"); a value
    that is not a period is shown as it is."""
    return shown(period_phrase(code), checked_language(language))
