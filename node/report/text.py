"""The yearly report's words, in the report's language, from the project's gettext catalog.

Every sentence and label is one English msgid with named ``{fields}``, written where it is
used: the template (templates/report.html.j2) calls ``_("Cooperation report for {year}",
year=...)``, never building a sentence from fragments. The Vietnamese is in
node/language/locale/vi/LC_MESSAGES/lienthong.po with every other clerk-facing string (babel.cfg
extracts the template), so the catalog test fails on a report string without its translation.
The words chosen by a code are tables of msgids: the few that only the report shows are here;
document types and the kinds and states of deadlines are node/language/names.py's, the same
words the web pages and ``lienthong status`` use.
"""
from __future__ import annotations

from lienthong.node.language.catalog import translate
from lienthong.node.language.text import _

LANGUAGES = ("vi", "en")

#: The latency histogram's buckets (figures.LATENCY_BUCKETS), shortest first.
LATENCY_BUCKET_NAMES = (_("< 1 min"), _("1–10 min"), _("10–60 min"), _("1–4 h"),
                        _("4–24 h"), _("> 1 day"))
#: What went wrong with a document (figures.Failure ``what``).
FAILURE_NAMES = {"refused": _("Refused at the outbox"), "delivery": _("Delivery failed")}
#: A reconciliation's state (node/reconciliation).
RECONCILIATION_NAMES = {"agreed": _("Agreed"), "differs": _("Differs"),
                        "pending": _("Pending"), "requested": _("Requested")}
#: A recall's outcome (figures.Recall ``outcome``): the recalls table's state, or for one
#: this office sent, the answers its recipients signed.
RECALL_OUTCOME_NAMES = {"sent": _("Sent, no answer yet"), "accepted": _("Recall accepted"),
                        "refused": _("Recall refused"),
                        "recall-accepted": _("Recall accepted"),
                        "recall-refused": _("Recall refused")}


def report_text(lang: str, message: str, **fields: object) -> str:
    """The msgid ``message`` in ``lang`` with its fields filled in (after translating, so a
    translation may reorder them)."""
    return translate(lang, message).format(**fields)


def named(lang: str, table: dict[str, str], code: str) -> str:
    """The word for ``code`` in one of this module's tables (the code itself if unknown)."""
    message = table.get(code)
    return translate(lang, message) if message is not None else code
