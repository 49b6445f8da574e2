"""The yearly report's web page: the figures ``lienthong report`` computes, read from a real
SQLite store, rendered in the page's language inside the page's frame, with nothing the strict
Content-Security-Policy would refuse and peer text kept inert."""
from __future__ import annotations

import calendar
import datetime as dt
import re

import pytest

from lienthong.node.report.figures import ReportError
from lienthong.node.report.render import render_body, render_html
from lienthong.node.store.database import open_store
from lienthong.node.web import views
from lienthong.node.web.rendering import render
from tests.node.audit.test_verify import Home, make_honest_home
from tests.node.web.test_pages_language import BASE

HOSTILE = '<img src=x onerror=alert(1)></script>'
#: The day the page is asked for: 20 March 2027, so the default is 2026, the last full year.
NOW = calendar.timegm(dt.datetime(2027, 3, 20, 3, 0).timetuple())


def _figures(home: Home, year: int) -> object:
    store = open_store(home.config.store.url)
    try:
        return views.report_figures(store, year, "tinhuy", home.keys.node_id,
                                    home.config.coordination, NOW, home.keys)
    finally:
        store.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    made = make_honest_home(tmp_path_factory.mktemp("report-page"))
    store = open_store(made.config.store.url)
    try:  # a file refused at the outbox late on 31 December, Vietnam time, named by a clerk
        store.append_audit("refused", "2026-12-31T16:30:00Z",
                           detail={"name": HOSTILE, "reason": "no sidecar " + HOSTILE})
    finally:
        store.close()
    return made


def _page(body: object, lang: str) -> str:
    page = render("report.html", lang, **{**BASE, "page": "report", "title": "-",
                                          "year": 2026, "this_year": 2027,
                                          "years": [2027, 2026, 2025], "pdf": False,
                                          "body": body})
    return page.decode("utf-8")


@pytest.mark.parametrize(("lang", "words"), [
    ("vi", ("Tóm tắt", "tinhuy đã gửi 1 và nhận 1 văn bản trong năm 2026", "Năm báo cáo",
            "2027 (đến nay)", "Từ chối tại hộp gửi")),
    ("en", ("Summary", "tinhuy sent 1 and received 1 documents in 2026", "Year of the report",
            "2027 (so far)", "Refused at the outbox")),
])
def test_a_year_of_the_store_renders_in_the_pages_language(home: Home, lang: str,
                                                           words: tuple[str, ...]) -> None:
    figures = _figures(home, 2026)
    page = _page(render_body(figures, lang=lang), lang)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    for expected in words:
        assert expected in text, expected
    assert 'tr data-pair="tinhuy-hdnd"' in page
    # the same render as the report file, minus its shell: no second computation
    body = str(render_body(figures, lang=lang))
    assert body.split('<section id="summary">')[1] in render_html(figures, lang=lang)


def test_the_body_needs_no_inline_style_and_keeps_peer_text_inert(home: Home) -> None:
    body = str(render_body(_figures(home, 2026), lang="vi"))
    assert "<svg" in body  # the charts are drawn inline
    assert "<style" not in body and " style=" not in body and "<script" not in body
    assert HOSTILE not in body and "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;" in body
    assert "<h1" not in body  # the page's own title heads it


def test_dates_are_dd_mm_yyyy_on_vietnams_calendar(home: Home) -> None:
    body = str(render_body(_figures(home, 2026), lang="en"))
    assert "drawn up on 20/03/2027" in body
    # 16:30 UTC on 31 December is 23:30 in Hanoi: still 31/12 (and not 2026-12-31)
    assert "<td class=\"d\">31/12/2026</td>" in body and "2026-12-31" not in body
    assert not re.search(r">\d{4}-\d{2}-\d{2}<", body)


def test_a_year_without_documents_is_refused_not_drawn(home: Home) -> None:
    with pytest.raises(ReportError, match="nothing to report for 2025"):
        _figures(home, 2025)


def test_the_picker_marks_the_chosen_year() -> None:
    page = _page(None, "vi")
    assert re.search(r'<option value="2026"\s+selected>2026</option>', page)
    assert '<option value="2027" >2027 (đến nay)</option>' in page
    assert 'id="report"' not in page  # no body, no empty report
