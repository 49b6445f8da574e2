"""The report's three charts, drawn by matplotlib to SVG text to embed inline in the HTML.

matplotlib is the maintained standard for charts in Python and writes SVG without a display
or a browser. Text is written as glyph outlines (``svg.fonttype = "path"``) in DejaVu Sans,
which matplotlib ships and which covers Vietnamese, so the diacritics show in every viewer
and printer without any font installed, and no text of the chart is markup that a peer could
shape. Math text is off: a ``$`` in a label is a dollar sign. Each chart gets its own id
prefix (``svg.hashsalt``) so that several inline SVGs in one page never share an element id,
and the output is the same for the same figures (no date, fixed ids). matplotlib's CSS (a
``<style>`` element and ``style`` attributes) is rewritten as SVG presentation attributes,
which draw the same and which the web page's Content-Security-Policy (no inline style) allows.
"""
from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE: dict[str, Any] = {
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: One colour per office, in the order the report lists them; states in their own colours.
PALETTE = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6")
STATE_COLOURS = {"on-time": "#548235", "late": "#c55a11", "missing": "#a50021",
                 "overdue": "#e46c0a", "due": "#8ea9db"}


def _context(extra: dict[str, Any] | None = None) -> Any:
    """matplotlib's settings for the report (its stubs type the keys as literals)."""
    settings: Any = {**STYLE, **(extra or {})}
    return matplotlib.rc_context(settings)


def _svg(figure: Figure, salt: str) -> str:
    with _context({"svg.hashsalt": salt}):
        buffer = io.StringIO()
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return _presentation(text[text.index("<svg"):])


_STYLE_ATTRIBUTE = re.compile(r' style="([^"<>]*)"')
_STYLE_ELEMENT = re.compile(r"\s*<style[^>]*>\s*\*\s*\{([^}<]*)\}\s*</style>")
_DECLARATION = re.compile(r"\s*([a-z-]+)\s*:\s*([^;]+?)\s*(?:;|$)")


def _attributes(declarations: str) -> str:
    return "".join(f' {name}="{value}"' for name, value in _DECLARATION.findall(declarations))


def _presentation(svg: str) -> str:
    """matplotlib's SVG with its CSS as presentation attributes (``fill="#fff"`` for
    ``style="fill: #fff"``; the root's ``* {...}`` rule on the root, whose properties the
    elements inherit): the same drawing, with no inline style for a CSP to refuse."""
    found = _STYLE_ELEMENT.search(svg)
    if found is not None:
        svg = svg[:found.start()] + svg[found.end():]
        svg = svg.replace("<svg", "<svg" + _attributes(found.group(1)), 1)
    return _STYLE_ATTRIBUTE.sub(lambda m: _attributes(m.group(1)), svg)


def _figure(width: float = 6.8, height: float = 2.8) -> Figure:
    with _context():
        return Figure(figsize=(width, height), layout="constrained")


def monthly_volume(series: Mapping[str, Sequence[int]], *, months: Sequence[str],
                   title: str, ylabel: str) -> str:
    """Stacked bars: documents per month, one colour per sending office."""
    with _context():
        figure = _figure()
        axes = figure.subplots()
        bottom = [0] * len(months)
        for index, (office, counts) in enumerate(series.items()):
            axes.bar(months, counts, bottom=bottom, label=office,
                     color=PALETTE[index % len(PALETTE)])
            bottom = [a + b for a, b in zip(bottom, counts, strict=True)]
        axes.set_title(title)
        axes.set_ylabel(ylabel)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _svg(figure, "volume")


def on_time(counts: Mapping[str, Mapping[str, int]], *, states: Mapping[str, str],
            title: str, xlabel: str) -> str:
    """Horizontal stacked bars per owing office: obligations by state, with the on-time rate."""
    with _context():
        offices = list(counts)
        figure = _figure(height=0.6 + 0.45 * max(1, len(offices)))
        axes = figure.subplots()
        left = [0] * len(offices)
        for state, label in states.items():
            values = [counts[o].get(state, 0) for o in offices]
            if not any(values):
                continue
            axes.barh(offices, values, left=left, label=label,
                      color=STATE_COLOURS.get(state, "#999999"))
            left = [a + b for a, b in zip(left, values, strict=True)]
        for row, office in enumerate(offices):
            per = counts[office]
            settled = sum(per.get(s, 0) for s in ("on-time", "late", "missing"))
            if settled:
                rate = 100 * per.get("on-time", 0) / settled
                axes.text(left[row] + 0.2, row, f"{rate:.0f}%", va="center")
        axes.invert_yaxis()
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _svg(figure, "ontime")


def latency(histogram: Sequence[int], *, buckets: Sequence[str], title: str,
            ylabel: str) -> str:
    """Bars: receipted documents by how long delivery took."""
    with _context():
        figure = _figure(height=2.4)
        axes = figure.subplots()
        bars = axes.bar(buckets, histogram, color=PALETTE[0])
        axes.bar_label(bars, labels=[str(v) if v else "" for v in histogram])
        axes.set_title(title)
        axes.set_ylabel(ylabel)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        return _svg(figure, "latency")
