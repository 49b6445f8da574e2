"""The yearly report as one self-contained HTML file (Jinja2, autoescaped), and its PDF.

The page carries its charts inline (SVG from node/report/charts.py), its style in one
``<style>`` element with print rules for A4 (templates/report.css), and nothing fetched from
anywhere, so the file can be mailed, archived and opened offline. The web page shows the same
body (``render_body``: templates/report-body.html.j2, from the same figures) inside its own
frame, with report.css served as a file so that its strict Content-Security-Policy needs no
inline style. Every value shown goes through Jinja2's
autoescape: subjects, file names and reasons that came from a peer are text, never markup.
The charts are our own SVG (text drawn as outlines), the one thing marked safe.

The PDF is printed from that HTML by a real browser: Debian's Chromium (``/usr/bin/chromium``)
driven by Playwright, both optional (``pip install lienthong[pdf]``, ``apt install chromium``).
An office without them opens the HTML in any browser and prints it to PDF: the print rules
give the same A4 pages.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from lienthong.node.documents.programme_items import VIETNAM
from lienthong.node.language.catalog import translate
from lienthong.node.language.names import name_of, show_date, show_period
from lienthong.node.report.figures import (
    OBLIGATION_STATES,
    ReportError,
    Spread,
    YearFigures,
)
from lienthong.node.report.text import (
    FAILURE_NAMES,
    LANGUAGES,
    LATENCY_BUCKET_NAMES,
    RECALL_OUTCOME_NAMES,
    RECONCILIATION_NAMES,
    named,
    report_text,
)

if TYPE_CHECKING:
    from jinja2 import Environment

#: Shown where there is no figure, in both languages.
NO_FIGURE = "—"
#: The report's style (every rule scoped to ``.report``), inlined in the file and served to
#: the web page as a stylesheet.
STYLESHEET = Path(__file__).resolve().parent / "templates" / "report.css"


def _environment() -> Environment:
    # Imported when a report is drawn, not by every node at start (docs/benchmarks.md
    # History 46).
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("lienthong.node.report", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def duration(lang: str, seconds: float | None) -> str:
    """A duration in the largest unit that keeps it readable."""
    if seconds is None:
        return NO_FIGURE
    if seconds < 120:
        return translate(lang, "{value} s").format(value=f"{seconds:.1f}")
    if seconds < 7200:
        return translate(lang, "{value} min").format(value=f"{seconds / 60:.0f}")
    if seconds < 2 * 86400:
        return translate(lang, "{value} h").format(value=f"{seconds / 3600:.1f}")
    return translate(lang, "{value} days").format(value=f"{seconds / 86400:.1f}")


def _day(lang: str, text: str | None) -> str:
    """A day as offices write it (dd/mm/yyyy); a time is first put on Vietnam's calendar, the
    one the report counts by, so a document of 31/12 at 23:00 is not shown as 31/12 UTC's."""
    if not text:
        return ""
    if len(text) > 10:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        if moment.tzinfo is not None:
            return show_date(moment.astimezone(VIETNAM).date(), lang)
    return show_date(text, lang)


def render_html(figures: YearFigures, *, lang: str = "vi") -> str:
    """The report file for ``figures`` in ``lang`` (``vi`` or ``en``): one self-contained
    HTML document."""
    context = _context(figures, lang, embedded=False)
    context["stylesheet"] = Markup(STYLESHEET.read_text(encoding="utf-8"))  # noqa: S704 - ours
    return _environment().get_template("report.html.j2").render(context)


def render_body(figures: YearFigures, *, lang: str = "vi") -> Markup:
    """The report's content for the web page (no document shell, no title: the page has its
    own), the same figures and words as ``render_html``; style from report.css."""
    return Markup(_environment().get_template("report-body.html.j2").render(  # noqa: S704
        _context(figures, lang, embedded=True)))


def _context(figures: YearFigures, lang: str, *, embedded: bool) -> dict[str, Any]:
    # matplotlib is imported only when a report is drawn: a running node serves its web page
    # from this room, and matplotlib at start would cost every node about 40 MiB and 0.4 s.
    from lienthong.node.report import charts
    if lang not in LANGUAGES:
        raise ReportError(f"the report is written in {' or '.join(LANGUAGES)}, not {lang!r}")

    def t(message: str, **fields: object) -> str:
        return report_text(lang, message, **fields)

    # The month's number alone in English; "T3" (tháng 3) in Vietnamese.
    months = [translate(lang, "{month}").format(month=m) for m in range(1, 13)]
    states = {s: name_of("deadline_state", s, lang) for s in OBLIGATION_STATES}
    counts = figures.obligation_counts()
    sent = sum(p.documents for p in figures.pairs if p.sender == figures.office)
    received = sum(p.documents for p in figures.pairs if p.recipient == figures.office)
    receipted = sum(p.receipted for p in figures.pairs if p.sender == figures.office)
    volume = figures.monthly_by_sender()
    volume = {office: series for office, series in volume.items() if any(series)}
    histogram = figures.latency_histogram()
    context: dict[str, Any] = {
        "_": t, "lang": lang, "f": figures, "months": months, "states": states,
        "counts": counts, "sent": sent, "received": received, "receipted": receipted,
        "embedded": embedded, "duration": lambda s: duration(lang, s),
        "day": lambda text: _day(lang, text), "period": lambda code: show_period(code, lang),
        "rate": _rate,
        "kind_name": lambda kind: name_of("deadline_kind", kind, lang),
        "type_name": lambda code: name_of("type", code, lang),
        "failure_name": lambda code: named(lang, FAILURE_NAMES, code),
        "reconciliation_name": lambda code: named(lang, RECONCILIATION_NAMES, code),
        "outcome_name": lambda outcome: ", ".join(
            named(lang, RECALL_OUTCOME_NAMES, part) for part in outcome.split(", ")),
        "late_rows": [row for row in figures.obligations
                      if row.state in ("late", "missing", "overdue")],
        "types": sorted({ty for p in figures.pairs for ty in p.by_type}),
        "overall": {"latency": Spread.of(e.latency for e in figures.exchanges),
                    "turnaround": Spread.of(e.turnaround for e in figures.exchanges)},
        "volume_svg": Markup(charts.monthly_volume(  # noqa: S704 - our own SVG, text as paths
            volume, months=months,
            title=translate(lang, "Documents per month, by sending office"),
            ylabel=translate(lang, "Documents")))
        if volume else None,
        "on_time_svg": Markup(charts.on_time(  # noqa: S704
            counts, states=states,
            title=translate(lang, "Obligations due in the year, by office"),
            xlabel=translate(lang, "Count")))
        if counts else None,
        "latency_svg": Markup(charts.latency(  # noqa: S704
            histogram, buckets=[translate(lang, name) for name in LATENCY_BUCKET_NAMES],
            title=translate(lang, "Time from dispatch to signed receipt"),
            ylabel=translate(lang, "Documents")))
        if any(histogram) else None,
    }
    return context


def _rate(per: dict[str, int]) -> str:
    settled = sum(per.get(s, 0) for s in ("on-time", "late", "missing"))
    if not settled:
        return NO_FIGURE
    return f"{100 * per.get('on-time', 0) / settled:.0f}%"


#: Where Debian installs Chromium; ``--chromium`` names another.
CHROMIUM = "/usr/bin/chromium"


def chromium_executable(given: str | None = None) -> str:
    """The browser that prints the PDF, or a ReportError saying how to get one."""
    candidate = given or shutil.which("chromium") or CHROMIUM
    if not Path(candidate).exists():
        raise ReportError(f"printing the PDF needs Chromium, not found at {candidate} "
                          "(apt install chromium); or open the HTML report in any browser "
                          "and print it to PDF")
    return candidate


def pdf_available() -> bool:
    """Whether this computer can print the PDF: Playwright installed and Chromium found."""
    if importlib.util.find_spec("playwright") is None:
        return False
    try:
        chromium_executable()
    except ReportError:
        return False
    return True


def pdf_bytes(figures: YearFigures, *, lang: str, workdir: Path) -> bytes:
    """The report of ``figures`` printed to PDF (blocking), through files in ``workdir``
    that are removed afterwards."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="report-") as folder:
        html = Path(folder) / "report.html"
        html.write_text(render_html(figures, lang=lang), encoding="utf-8")
        pdf = html.with_suffix(".pdf")
        print_pdf(html, pdf)
        return pdf.read_bytes()


def print_pdf(html: Path, pdf: Path, *, chromium: str | None = None) -> None:
    """Print the HTML file to an A4 PDF with headless Chromium (blocking)."""
    executable = chromium_executable(chromium)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ReportError("printing the PDF needs Playwright (pip install 'lienthong[pdf]'); "
                          "or open the HTML report in any browser and print it to PDF"
                          ) from None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(html.resolve().as_uri(), wait_until="load")
                page.pdf(path=str(pdf), format="A4", print_background=True,
                         prefer_css_page_size=True, outline=True, tagged=True)
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ReportError(f"Chromium could not print the report to PDF: "
                          f"{str(exc).splitlines()[0]}") from None


def today_text(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")
