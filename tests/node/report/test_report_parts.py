"""The report's pure parts: percentiles, latency buckets, types, charts and the page's escaping."""
from __future__ import annotations

from lienthong.node.report import charts
from lienthong.node.report.figures import (
    Exchange,
    PairFigures,
    Spread,
    YearFigures,
    _bucket,
    doc_type,
)
from lienthong.node.report.render import duration, render_html


def test_median_and_p95_by_nearest_rank() -> None:
    spread = Spread.of([5.0, 1.0, None, 3.0, 2.0, 4.0])
    assert (spread.count, spread.median, spread.p95) == (5, 3.0, 5.0)
    assert Spread.of([None]) == Spread(0, None, None)
    assert Spread.of(float(i) for i in range(1, 101)).p95 == 95.0


def test_latency_buckets_and_types() -> None:
    assert [_bucket(s) for s in (0.5, 60, 599, 3600, 20000, 86400, 10**7)] == \
        [0, 1, 1, 3, 4, 5, 5]
    assert doc_type({"type": "directive"}) == "directive"
    assert doc_type({"type": "<b>bogus</b>"}) == "other"
    assert doc_type({"kind": "message", "type": "message"}) == "message"




def test_chart_text_is_drawn_not_written() -> None:
    """Vietnamese labels become outlines: no <text> for a viewer's font to miss, no markup."""
    svg = charts.monthly_volume({"hdnd": [1] * 12, "<ubnd>": [2] * 12},
                                months=[f"T{m}" for m in range(1, 13)],
                                title="Số văn bản mỗi tháng $x$", ylabel="Văn bản")
    assert svg.startswith("<svg") and "<text" not in svg and "<ubnd>" not in svg
    assert "<path" in svg
    again = charts.monthly_volume({"hdnd": [1] * 12, "<ubnd>": [2] * 12},
                                  months=[f"T{m}" for m in range(1, 13)],
                                  title="Số văn bản mỗi tháng $x$", ylabel="Văn bản")
    assert again == svg  # deterministic: same figures, same bytes


def test_peer_text_is_escaped_in_the_page() -> None:
    exchange = Exchange("a" * 32, "hdnd", "tinhuy", "report", 3, "<img src=x>.pdf",
                        "2025-03-03T02:00:00Z", "2025-03-03T02:00:30Z", None, None)
    pair = PairFigures("hdnd", "tinhuy", 1, 1, {"report": 1}, (0, 0, 1) + (0,) * 9,
                       Spread.of([30.0]), Spread.of([]), 0)
    from lienthong.node.report.figures import Recall
    figures = YearFigures(2025, "tinhuy", "2026-01-05T00:00:00Z", ("tinhuy", "hdnd"), (pair,),
                          (exchange,), (), (Recall("2025-03-04T02:00:00Z", "hdnd",
                                                   "<img src=x>.pdf", "<script>x</script>",
                                                   "accepted"),), (), (), ())
    page = render_html(figures, lang="vi")
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;.pdf" in page
    assert "Báo cáo kết quả phối hợp năm 2025" in page
    assert duration("vi", 30.0) == "30.0 giây" and duration("en", 7200) == "2.0 h"
