"""The gettext catalogs: which languages exist, loading one, choosing one for a browser.

Theory of operation
-------------------
Source strings (msgids) are English, written where they are used: ``_("Documents")`` in
Python, ``{% trans %}`` or ``_()`` in templates. English msgids are the usual gettext
practice, and they let the next round move every existing English message of the CLI,
status and reason files into the catalog by wrapping it, without rewriting it. Vietnamese,
the default, is ``locale/vi/LC_MESSAGES/lienthong.po``; English needs no catalog (the msgids
are the English text).

The ``.po`` file is the only copy: it is compiled into an in-memory ``.mo`` with Babel when a
language is first asked for (a few milliseconds, once per process), so no compiled binary is
checked in to drift from it and no build step has to remember to make one.
``tests/node/language/test_catalog.py`` fails when ``pybabel extract`` finds a string the
catalog lacks or the catalog holds an entry without a translation.
"""
from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from gettext import GNUTranslations, NullTranslations
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "lienthong"
DEFAULT_LANGUAGE = "vi"
LANGUAGES = ("vi", "en")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def checked_language(language: str | None) -> str:
    """``language`` if lienthong speaks it, else the default (Vietnamese)."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@functools.cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` (one of ``LANGUAGES``); English is the msgids themselves."""
    language = checked_language(language)
    path = po_path(language)
    if not path.exists():
        return NullTranslations()
    with open(path, "rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return GNUTranslations(compiled)


def translate(language: str, message: str) -> str:
    return translations(language).gettext(message)


def translate_plural(language: str, singular: str, plural: str, n: int) -> str:
    return translations(language).ngettext(singular, plural, n)


def negotiate(accept_language: str | None) -> str:
    """The language to answer a browser in, from its ``Accept-Language`` header."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    wanted = _by_quality(accept_language)
    chosen = Locale.negotiate(wanted, list(LANGUAGES), sep="-")
    return chosen.language if chosen is not None else DEFAULT_LANGUAGE


def _by_quality(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for order, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, order, tag.strip()))
    return [_known(tag) for _, _, tag in sorted(ranked)]


def _known(tag: str) -> str:
    """The tag in canonical case, still joined with "-" (``negotiate`` falls back from
    ``en-US`` to ``en`` by splitting at that separator)."""
    try:
        return str(Locale.parse(tag, sep="-")).replace("_", "-")
    except (ValueError, UnknownLocaleError):
        return tag


def languages_listed() -> Iterable[str]:
    return LANGUAGES
