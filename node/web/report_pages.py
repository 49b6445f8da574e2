"""The yearly report's page (``/report``) and its files (``/report/<year>.html|pdf``).

The report is ``lienthong report``'s: the same figures (node/report/figures.py, read on the
status thread) and the same words, its body rendered and its charts drawn on the runtime's
worker (``rt.io``); its stylesheet is served as ``/static/report.css`` (site.py) so that the
page keeps the strict CSP.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.language.catalog import translate
from lienthong.node.language.text import Phrase
from lienthong.node.report.figures import ReportError
from lienthong.node.report.render import pdf_available, pdf_bytes, render_body
from lienthong.node.report.render import render_html as render_report
from lienthong.node.web import views
from lienthong.node.web.context import HTML, Answer, PageContext

#: How many years the report page offers: this year (so far) and the years before it.
REPORT_YEARS = 6
_REPORT_FILE = re.compile(r"(\d{4})\.(html|pdf)")


def _this_year(ctx: PageContext) -> int:
    return dt.datetime.fromtimestamp(ctx.rt.now(), VIETNAM).year


def _report_year(text: str) -> int:
    """The report's year from the page's address, or a 400 naming the value."""
    if not (text.isascii() and text.isdigit() and 2000 <= int(text) <= 2200):
        raise Answer(400, Phrase("{year} is not a year the report can be made for; choose a "
                                 "year between 2000 and 2200.", year=text[:20]))
    return int(text)


def _report_figures(ctx: PageContext, year: int) -> Deferred:
    """The year's figures on the status thread (read-only, never behind the node's
    writes): ``lienthong report``'s code, this office's keys to open the sealed headers."""
    rt = ctx.rt
    return ctx.status.reads.run(views.report_figures, year, rt.config.node.name,
                                rt.node_id, rt.config.coordination, rt.now(), rt.keys)


def report(ctx: PageContext) -> Generator[Deferred[Any], Any, None]:
    lang = ctx.lang
    this_year = _this_year(ctx)
    wanted = ctx.arg("year").strip()
    year = _report_year(wanted) if wanted else this_year - 1
    years = sorted({*range(this_year, this_year - REPORT_YEARS, -1), year}, reverse=True)
    yield ctx.rt.audit("web-action", user=ctx.user, action="report", year=year,
                       format="page")
    pdf = yield ctx.rt.io(pdf_available)
    body, problem = None, None
    try:
        figures = yield _report_figures(ctx, year)
    except ReportError:
        problem = Phrase("This office's records hold no document sent or received in "
                         "{year}: there is nothing to report for {year}.", year=year)
    else:
        body = yield ctx.rt.io(render_body, figures, lang=lang)
    ctx.page("report.html", page="report",
             title=translate(lang, "Cooperation report for {year}").format(year=year),
             year=year, this_year=this_year, years=years, pdf=pdf, body=body,
             problem=problem.in_language(lang) if problem else None)


def report_file(ctx: PageContext, name: str) -> Generator[Deferred[Any], Any, None]:
    found = _REPORT_FILE.fullmatch(name)
    if found is None:
        raise Answer(404, Phrase("There is no such page."))
    year, kind = _report_year(found.group(1)), found.group(2)
    rt, lang = ctx.rt, ctx.lang
    if kind == "pdf":
        ready = yield rt.io(pdf_available)
        if not ready:
            raise Answer(404, Phrase(
                "This computer cannot print the report to PDF: it needs Chromium and "
                "Playwright (apt install chromium; pip install 'lienthong[pdf]'). Download "
                "the HTML report and print it to PDF from any browser."))
    yield rt.audit("web-action", user=ctx.user, action="report", year=year, format=kind)
    try:
        figures = yield _report_figures(ctx, year)
    except ReportError:
        raise Answer(404, Phrase("This office's records hold no document sent or received "
                                 "in {year}: there is nothing to report for {year}.",
                                 year=year)) from None
    filename = f"lienthong-report-{year}-{lang}.{kind}"
    ctx.request.setHeader(b"content-disposition",
                          f"attachment; filename={filename}".encode("ascii"))
    if kind == "html":
        page = yield rt.io(render_report, figures, lang=lang)
        ctx.write(page.encode("utf-8"), HTML)
        return
    try:
        data = yield rt.io(pdf_bytes, figures, lang=lang, workdir=rt.config.home / "tmp")
    except ReportError as exc:
        raise Answer(503, Phrase("The PDF could not be printed: {reason}",
                                 reason=str(exc))) from None
    ctx.write(data, b"application/pdf")
