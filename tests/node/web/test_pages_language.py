"""Every page reads in Vietnamese by default and in English on request: no English label of a
template is left in the Vietnamese page, and codes (deadline and petition kinds and states,
key kinds, statuses) are shown by their names."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_file
from markupsafe import Markup

from lienthong.node.language.catalog import translate
from lienthong.node.web.rendering import TEMPLATES, render

BASE: dict[str, Any] = {
    "office": "Văn phòng Tỉnh ủy", "csrf": "t" * 32, "user": "local", "remote": False,
    "role_name": "", "may_act": True, "may_admin": True,
    "slots": [{"path": "petitions", "title": "Petitions"}],
    "notice": None, "problem": None, "title": "-"}

DEADLINE = {"kind": "quarterly", "period": "2026-Q2", "office": "hdnd", "owed_to": "tinhuy",
            "due": "2026-04-10", "state": "overdue", "working_days_left": None}
LIMIT = {"due": "2026-05-04", "state": "due", "days_left": 3}
PETITION = {"reference": "hdnd/12", "received": "2026-04-01", "kind": "denunciation",
            "petitioner": "Nguyễn Văn A", "subject": "<b>đất đai</b>", "direction": "received",
            "office": "hdnd", "state": "taken-over", "accept_limit": LIMIT,
            "resolve_limit": dict(LIMIT, state="late")}
PEER = {"name": "hdnd", "node_id": "n" * 52, "state": "trusted", "addresses": ["127.0.0.1:1"],
        "reason": None, "code": "1234-5678", "last_seen_at": None,
        "key_list": [{"kind": "identity", "kid": "k1", "valid_from": "2026-01-01",
                      "valid_until": None},
                     {"kind": "encryption", "kid": "k2", "valid_from": "2026-01-01",
                      "valid_until": "2027-01-01"}]}
STATUS = {"status": "registered", "time": "2026-04-02T02:00:00Z", "register_number": "15",
          "note": "", "chained_to_receipt": True}
SENT_DOC = {"direction": "sent", "message_id": "a" * 32, "name": "cv.pdf", "target": "hdnd",
            "state": "sent", "meta": {"type": "letter", "number": "12/CV", "urgency": "flash",
                                      "confidentiality": "confidential", "due": "2026-05-01"},
            "recipients": [{"office": "hdnd", "delivery": "delivered",
                            "receipt_at": "2026-04-01T02:00:00Z", "last_error": None,
                            "statuses": [STATUS]}],
            "recalls": [{"state": "accepted", "reason": "sai", "time": "2026-04-03T00:00:00Z",
                         "refusal": None}]}
RECEIVED_DOC = {"direction": "received", "message_id": "b" * 32, "name": "nq.pdf",
                "sender": "ubnd", "received_at": "2026-04-01T02:00:00Z",
                "meta": {"type": "resolution"}, "statuses": [STATUS], "recalls": []}
SNAPSHOT = {"health": "warning", "today": {"received": 1, "sent": 2},
            "warnings": [{"level": "warning", "message": "x", "text": {
                "phrase": "The user {user} already exists.", "fields": {"user": "an"}}}],
            "peers": [{"name": "hdnd", "connected": False, "queue": {"count": 1},
                       "last_seen_at": None}],
            "transfers": [], "receiving": []}
ROW = {"direction": "received", "message_id": "b" * 32, "name": "nq.pdf",
       "meta": {"type": "resolution", "number": "3/NQ", "subject": "Nghị quyết"},
       "offices": ["ubnd"], "time": "2026-04-01T02:00:00Z", "status": "in-progress"}

#: Each page and what its template needs.
PAGES: dict[str, dict[str, Any]] = {
    "overview.html": {"page": "overview", "snap": SNAPSHOT},
    "documents.html": {"page": "documents", "rows": [ROW], "offices": ["ubnd"],
                       "types": ["letter", "resolution"],
                       "query": {"text": "", "number": "", "type": "", "office": "",
                                 "direction": "", "date_from": "", "date_to": ""}},
    "document.html": {"page": "documents", "doc": SENT_DOC, "statuses": ["registered"]},
    "peers.html": {"page": "peers", "peers": [PEER]},
    "audit.html": {"page": "audit", "verify": {"ok": True, "entries": 3, "signed_heads": 1,
                                               "receipts": 2},
                   "entries": [], "query": {"kind": "", "peer": "", "message_id": ""},
                   "query_string": ""},
    "send.html": {"page": "send", "targets": ["hdnd"], "types": ["letter"],
                  "urgencies": ["normal", "flash"], "classes": ["normal", "secret"]},
    "deadlines.html": {"page": "deadlines", "rows": [DEADLINE, dict(
        DEADLINE, kind="document", state="due", working_days_left=2)]},
    "petitions.html": {"page": "petitions", "rows": [PETITION]},
    "slot.html": {"page": "petitions"},
    "report.html": {"page": "report", "year": 2026, "this_year": 2027, "years": [2027, 2026],
                    "pdf": False, "body": Markup("<h2>-</h2>")},
    "login.html": {"page": "login"},
    "notice.html": {"page": "", "problem": "-", "back": "/"},
}


def _msgids(template: str) -> set[str]:
    found = set()
    for _line, message, _comments, _context in extract_from_file(
            "jinja2", str(TEMPLATES / template),
            keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
            options={"extensions": "jinja2.ext.i18n"}):
        found.update(m for m in (message if isinstance(message, tuple) else (message,)) if m)
    return found


def _words(page: bytes) -> str:
    """The text a reader sees (tags dropped, entities decoded, spaces collapsed)."""
    text = re.sub(r"<[^>]+>", " ", page.decode("utf-8"))
    return " ".join(html.unescape(text).split())


def _page(template: str, lang: str) -> str:
    return _words(render(template, lang, **dict(BASE, **PAGES[template])))


def test_every_template_is_exercised() -> None:
    assert {p.name for p in Path(TEMPLATES).glob("*.html")} - {"base.html"} == set(PAGES)


@pytest.mark.parametrize("template", sorted(PAGES))
def test_the_page_is_vietnamese_without_its_english_labels(template: str) -> None:
    """Every label of the page (its template's msgids and the frame's) reads in Vietnamese:
    none of their English text is left where the Vietnamese differs."""
    page = _page(template, "vi")
    for message in _msgids(template) | _msgids("base.html"):
        english = re.sub(r"%\(\w+\)[sd]", "", message).strip()
        if len(english) > 3 and translate("vi", message) != message:
            assert english not in page, (template, message)


@pytest.mark.parametrize("template", sorted(PAGES))
def test_the_page_is_english_on_request(template: str) -> None:
    """In English the page shows its labels as written (the msgids) and no Vietnamese label."""
    page = _page(template, "en")
    assert "Tiếng Việt" in page  # the language button names itself in its language
    shown = [message for message in _msgids(template) if "%" not in message
             and message in page]
    assert shown, template
    for message in _msgids(template) | _msgids("base.html"):
        vietnamese = translate("vi", message)
        if "%" not in message and vietnamese != message and len(vietnamese) > 3:
            assert vietnamese not in page, (template, vietnamese)


def test_deadlines_show_the_names_of_kinds_and_states() -> None:
    vi, en = _page("deadlines.html", "vi"), _page("deadlines.html", "en")
    for expected in ("Chương trình công tác quý", "Quá hạn", "Văn bản có hạn", "Chưa đến hạn",
                     "Còn 2 ngày làm việc"):
        assert expected in vi, expected
    for code in ("quarterly", "overdue", "document "):
        assert code not in vi, code
    assert "Quarterly programme" in en and "Overdue" in en and "Not yet due" in en
    # the period as offices write it, the code nowhere
    assert "Quý II/2026" in vi and "Q2 2026" in en and "2026-Q2" not in vi + en


def test_the_report_page_offers_the_years_and_says_why_there_is_no_pdf() -> None:
    vi, en = _page("report.html", "vi"), _page("report.html", "en")
    assert "2027 (đến nay)" in vi and "2027 (so far)" in en
    assert "không có Chromium hoặc Playwright" in vi and "no Chromium or Playwright" in en
    with_pdf = render("report.html", "vi", **{**BASE, **PAGES["report.html"], "pdf": True})
    assert b'href="/report/2026.pdf"' in with_pdf and b"Playwright" not in with_pdf


def test_petitions_show_the_names_of_kinds_states_and_limits() -> None:
    vi, en = _page("petitions.html", "vi"), _page("petitions.html", "en")
    for expected in ("Tố cáo", "Cơ quan nhận chuyển đã vào sổ", "04/05/2026 · Chưa đến hạn",
                     "04/05/2026 · Trễ hạn", "Loại đơn"):
        assert expected in vi, expected
    for code in ("denunciation", "taken-over", " due", " late"):
        assert code not in vi, code
    assert "<b>đất đai</b>" in vi  # the petitioner's text, shown as text
    assert "Denunciation" in en and "Taken over by the office" in en and "Late" in en


def test_peers_name_the_kinds_of_keys() -> None:
    vi = _page("peers.html", "vi")
    assert "khóa định danh k1" in vi and "khóa mã hóa k2" in vi
    assert "identity key k1" in _page("peers.html", "en")


def test_the_overview_names_every_health() -> None:
    """ok, warning and critical (node/status/health.py) each have a name in both languages."""
    for health, vi, en in (("ok", "Hoạt động bình thường", "Working normally"),
                           ("critical", "Cần xử lý ngay", "Needs attention at once")):
        context = dict(BASE, **PAGES["overview.html"])
        context["snap"] = dict(SNAPSHOT, health=health)
        assert vi in _words(render("overview.html", "vi", **context))
        assert en in _words(render("overview.html", "en", **context))
