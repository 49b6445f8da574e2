"""One cell of text on a status screen: peer-supplied text made inert, and sizes, durations
and times as a clerk reads them (in the clerk's language).

Everything shown that came from a peer (document names, reasons in errors, metadata) is
attacker data. ``clean`` replaces control characters, bidi overrides and zero-width characters,
so a name can neither move the cursor nor disguise ``invoice\u202efdp.exe``; ``text`` puts the
result into ``rich.text.Text`` (never parsed as markup) and ``safe`` escapes it with
``rich.markup.escape`` where a markup string is built.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime, tzinfo
from typing import Any

from rich.markup import escape
from rich.text import Text

from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.language.catalog import DEFAULT_LANGUAGE, translate
from lienthong.node.language.text import Phrase

#: Invisible characters that can reorder or hide text (Trojan Source, RLO file names).
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d"
                       "\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")
MAX_TEXT = 160


def clean(value: Any, limit: int = MAX_TEXT) -> str:
    """Peer-supplied text made harmless for a terminal: no control or invisible characters."""
    text = "" if value is None else str(value)
    out = []
    for char in text[:limit]:
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out) + ("…" if len(text) > limit else "")


def safe(value: Any, limit: int = MAX_TEXT) -> str:
    """``clean`` and escaped for use inside a rich markup string."""
    return escape(clean(value, limit))


def text(value: Any, style: str = "", limit: int = MAX_TEXT) -> Text:
    """A rich Text of cleaned peer data (Text is never parsed as markup)."""
    return Text(clean(value, limit), style=style)


def size(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def duration(seconds: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return Phrase("{seconds} s", seconds=f"{seconds:.0f}").in_language(lang)
    if seconds < 3600:
        return Phrase("{minutes} min", minutes=f"{seconds // 60:.0f}").in_language(lang)
    if seconds < 86400:
        return Phrase("{hours} h {minutes} min", hours=f"{seconds // 3600:.0f}",
                      minutes=f"{seconds % 3600 // 60:.0f}").in_language(lang)
    return Phrase("{days} d {hours} h", days=f"{seconds // 86400:.0f}",
                  hours=f"{seconds % 86400 // 3600:.0f}").in_language(lang)


def when(stamp: str | None, now: float, tz: tzinfo | None = None,
         lang: str = DEFAULT_LANGUAGE) -> str:
    """A time as an operator reads it: "14:03" today, "25/11 14:03" before (local time)."""
    if not stamp:
        return translate(lang, "never")
    try:
        seconds = parse_rfc3339(stamp)
    except ValueError:
        return clean(stamp, 40)
    moment = datetime.fromtimestamp(seconds, tz) if tz else datetime.fromtimestamp(
        seconds).astimezone()
    today = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
    if moment.date() == today.date():
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%d/%m %H:%M")
    return moment.strftime("%d/%m/%Y %H:%M")


def ago(stamp: str | None, now: float, lang: str = DEFAULT_LANGUAGE) -> str:
    if not stamp:
        return translate(lang, "never")
    try:
        return Phrase("{duration} ago", duration=duration(now - parse_rfc3339(stamp), lang)
                      ).in_language(lang)
    except ValueError:
        return "?"
