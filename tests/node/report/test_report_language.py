"""The yearly report reads in Vietnamese by default and in English on request, every word of it
from the project's gettext catalog, codes shown by their names."""
from __future__ import annotations

import re

from lienthong.node.coordination.deadlines import DeadlineRow
from lienthong.node.language.catalog import translate
from lienthong.node.report.figures import (
    Exchange,
    Failure,
    PairFigures,
    Recall,
    Reconciliation,
    Spread,
    Witnessing,
    YearFigures,
)
from lienthong.node.report.render import duration, render_html
from lienthong.node.report.text import (
    FAILURE_NAMES,
    LATENCY_BUCKET_NAMES,
    RECALL_OUTCOME_NAMES,
    RECONCILIATION_NAMES,
)


def _row(kind: str, state: str) -> DeadlineRow:
    return DeadlineRow(kind=kind, period="2025-Q2", doc_type=None, office="hdnd",
                       owed_to="tinhuy", due="2025-04-10", due_day_off=None, state=state,
                       working_days_left=None, reminder=False, sent_at="2025-04-12T02:00:00Z",
                       received_at=None, message_id=None, name=None)


def _figures() -> YearFigures:
    exchange = Exchange("a" * 32, "hdnd", "tinhuy", "letter", 3, "cv.pdf",
                        "2025-03-03T02:00:00Z", "2025-03-03T02:00:30Z", "2025-03-04T02:00:30Z",
                        None)
    pair = PairFigures("hdnd", "tinhuy", 2, 1, {"letter": 1, "directive": 1},
                       (0, 0, 2) + (0,) * 9, Spread.of([30.0]), Spread.of([86400.0]), 1)
    return YearFigures(
        2025, "tinhuy", "2026-01-05T00:00:00Z", ("tinhuy", "hdnd"), (pair,), (exchange,),
        (_row("quarterly", "late"), _row("document", "missing"), _row("annual", "on-time")),
        (Recall("2025-03-04T02:00:00Z", "hdnd", "x.pdf", "sai số liệu", "accepted"),
         Recall("2025-03-05T02:00:00Z", "tinhuy", "y.pdf", "sai số liệu",
                "recall-accepted, recall-refused")),
        (Failure("2025-05-01T00:00:00Z", "refused", None, "z.pdf", "bad-metadata"),
         Failure("2025-05-02T00:00:00Z", "delivery", "ubnd", "w.pdf", "timeout")),
        (Reconciliation("hdnd", "2025-03", "differs", 2),),
        (Witnessing("hdnd", 3, "2025-12-01T00:00:00Z", 2, None),))


def _text(page: str) -> str:
    """The words a reader sees: the page without its style, charts and tags."""
    page = re.sub(r"<style>.*?</style>|<svg.*?</svg>", "", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_the_report_is_vietnamese_by_default_with_names_not_codes() -> None:
    """Headings, table labels, obligation kinds and states, document types, recall outcomes,
    failures and reconciliation states read in Vietnamese; no code or English label is left."""
    page = render_html(_figures())
    assert page == render_html(_figures(), lang="vi")
    text = _text(page)
    for expected in ("Báo cáo kết quả phối hợp năm 2025", "Tóm tắt", "Theo tháng", "T3",
                     "Chương trình công tác quý", "Văn bản có hạn", "Trễ hạn", "Không có",
                     "Đúng hạn",
                     "Công văn", "Chỉ thị", "Đã chấp nhận thu hồi", "Thu hồi bị từ chối",
                     "Từ chối tại hộp gửi", "Gửi không thành", "Có khác biệt",
                     "Đầu chuỗi nhật ký được làm chứng", "24.0 giờ", "30.0 giây"):
        assert expected in text, expected
    for english in ("Cooperation report", "Summary", "quarterly", "missing", "on-time",
                    "Official letter", "recall-accepted", "Refused at the outbox", "differs",
                    "Witnessed", " days", "Delivery"):
        assert english not in text, english


def test_the_report_in_english_on_request() -> None:
    """lang="en" gives the English msgids themselves, with the same figures."""
    text = _text(render_html(_figures(), lang="en"))
    for expected in ("Cooperation report for 2025", "Quarterly programme",
                     "Document with a due date", "Late", "Missing", "Official letter",
                     "Directive", "Recall accepted, Recall refused", "Refused at the outbox",
                     "Delivery failed", "Differs", "24.0 h", "30.0 s"):
        assert expected in text, expected
    assert "Báo cáo" not in text and "Trễ hạn" not in text
    assert duration("en", None) == duration("vi", None) == "—"


def test_every_word_the_report_chooses_by_code_is_translated() -> None:
    """The report's own tables of names all have a Vietnamese translation in the catalog."""
    for table in (FAILURE_NAMES, RECONCILIATION_NAMES, RECALL_OUTCOME_NAMES):
        for message in table.values():
            assert translate("vi", message) != message, message
    for message in LATENCY_BUCKET_NAMES:
        assert translate("vi", message) != message, message
