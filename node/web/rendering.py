"""The pages' templates: Jinja2 with autoescaping on, the i18n extension and the clerk's words.

One environment per language, made once: the gettext of that language is installed into it
(new-style, so ``_("... %(name)s", name=...)`` formats after translating and escapes), and the
helpers that name codes and dates in that language are its globals. Autoescaping is on for
every template, so a subject like ``<img src=x onerror=...>`` is shown as text.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lienthong.node.language.catalog import checked_language, translations
from lienthong.node.language.names import name_of, show_date, show_period, show_time
from lienthong.node.language.text import Phrase

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment(language: str) -> Environment:
    # Imported with the first page, not by every node at start (docs/benchmarks.md History 46).
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    language = checked_language(language)
    env = Environment(loader=FileSystemLoader(TEMPLATES), extensions=["jinja2.ext.i18n"],
                      autoescape=select_autoescape(default=True, default_for_string=True))
    catalog = translations(language)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]

    def status_line(status: dict[str, Any]) -> str:
        parts = [show_time(status.get("time"), language),
                 name_of("status", status.get("status"), language)]
        if status.get("register_number"):
            parts.append(catalog.gettext("register number {number}").format(
                number=status["register_number"]))
        if status.get("note"):
            parts.append(str(status["note"]))
        if status.get("chained_to_receipt") is False:
            parts.append(catalog.gettext("NOT chained to the receipt"))
        return " · ".join(parts)

    env.globals.update(
        type_name=lambda code: name_of("type", code, language),
        status_name=lambda code: name_of("status", code, language),
        urgency_name=lambda code: name_of("urgency", code, language),
        confidentiality_name=lambda code: name_of("confidentiality", code, language),
        state_name=lambda code: name_of("state", code, language),
        deadline_kind_name=lambda code: name_of("deadline_kind", code, language),
        deadline_state_name=lambda code: name_of("deadline_state", code, language),
        petition_kind_name=lambda code: name_of("petition_kind", code, language),
        petition_state_name=lambda code: name_of("petition_state", code, language),
        key_kind_name=lambda code: name_of("key_kind", code, language),
        day=lambda value: show_date(value, language),
        period=lambda code: show_period(code, language),
        when=lambda value: show_time(value, language),
        status_line=status_line,
        warning_text=lambda warning: Phrase.from_json(warning["text"]).in_language(language)
        if warning.get("text") else warning["message"])
    return env


def render(name: str, language: str, **context: Any) -> bytes:
    template = environment(language).get_template(name)
    return template.render(lang=checked_language(language), **context).encode("utf-8")
