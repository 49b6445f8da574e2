"""The Vietnamese catalog and the code agree; names and dates read as offices write them."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from lienthong.node.documents.vocabulary import (
    CONFIDENTIALITY_NAMES,
    STATUS_NAMES,
    TYPE_NAMES,
    URGENCY_NAMES,
)
from lienthong.node.language import names
from lienthong.node.language.catalog import negotiate, po_path, translate, translations
from lienthong.node.language.text import Phrase

ROOT = Path(__file__).resolve().parents[3]
#: The extraction keywords beside Babel's defaults: ``Phrase(msgid, **fields)`` and
#: ``translate(language, msgid)`` (node/language/), and the errors of the layers under the
#: node, which carry an English format string and its fields (config/schema.py,
#: keys/errors.py; translated at the command line's edge, node/cli/errors.py).
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "Phrase": None,
            "translate": (2,), "translate_plural": (2, 3), "ConfigError": None,
            "KeystoreError": None, "WrongPassphrase": None, "InsecurePermissions": None,
            "UnknownPeer": None, "DirectoryError": None, "DirectoryFileError": None,
            "BadCard": None, "refused_because": (2,)}


def extracted() -> set[str]:
    with open(ROOT / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog() -> dict[str, object]:
    with open(po_path("vi"), "rb") as handle:
        po = read_po(handle, locale="vi")
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): m.string for m in po if m.id}


def test_every_string_in_the_code_is_in_the_vietnamese_catalog() -> None:
    """pybabel extract finds no msgid that lienthong.po lacks (a new string needs its
    translation in the same change)."""
    missing = extracted() - set(catalog())
    assert not missing, f"not in node/language/locale/vi/LC_MESSAGES/lienthong.po: {missing}"


def test_every_catalog_entry_is_translated_and_still_used() -> None:
    """No entry is left untranslated, and none is left over from a string that is gone."""
    entries = catalog()
    untranslated = [k for k, v in entries.items()
                    if not v or (isinstance(v, tuple) and not all(v))]
    assert not untranslated, untranslated
    assert not set(entries) - extracted(), "stale entries: run the catalog update"


def test_placeholders_survive_translation() -> None:
    """A translation keeps exactly the fields of its msgid (else .format() would fail)."""
    import re
    pattern = re.compile(r"\{(\w+)\}|%\((\w+)\)[sd]")
    for msgid, text in catalog().items():
        first = text[0] if isinstance(text, tuple) else text
        assert {m for m in pattern.findall(msgid)} == {m for m in pattern.findall(str(first))}, \
            msgid


def test_every_code_of_the_documents_room_has_a_clerks_name() -> None:
    """Types, urgencies, confidentiality classes and statuses are all named in Vietnamese."""
    for table, codes in (("type", TYPE_NAMES), ("urgency", URGENCY_NAMES),
                         ("confidentiality", CONFIDENTIALITY_NAMES), ("status", STATUS_NAMES)):
        for code in codes:
            vi = names.name_of(table, code, "vi")
            assert vi != code and vi != names.name_of(table, code, "en"), (table, code)
    assert [names.name_of("urgency", c, "vi") for c in ("normal", "urgent", "very-urgent",
                                                        "flash")] == [
        "Thường", "Khẩn", "Thượng khẩn", "Hỏa tốc"]
    assert names.name_of("status", "registered", "vi") == "Đã vào sổ"
    assert names.name_of("status", "in-progress", "vi") == "Đang xử lý"
    assert names.name_of("status", "completed", "vi") == "Đã hoàn thành"
    assert names.name_of("type", "a-new-kind", "vi") == "a-new-kind"


def test_dates_are_day_month_year() -> None:
    assert names.show_date("2026-03-09", "vi") == "09/03/2026"
    assert names.show_date(dt.date(2026, 12, 31), "en") == "31/12/2026"
    assert names.show_time("2026-03-09T01:02:03Z", "vi", tz=dt.UTC) == \
        "09/03/2026 01:02"
    assert names.show_date("not a date", "vi") == "not a date"


def test_phrase_formats_after_translating_and_english_is_the_msgid() -> None:
    text = Phrase("The user {user} already exists.", user="an")
    assert text.in_language("vi") == "Người dùng an đã có."
    assert text.in_language("en") == str(text) == "The user an already exists."
    assert translate("en", "Documents") == "Documents"
    assert translations("vi") is translations("vi")  # compiled once


def test_the_browser_language_is_negotiated_with_vietnamese_as_default() -> None:
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("en-US") == "en"  # what an en-US Chromium sends, alone
    assert negotiate("vi-VN") == "vi"
    assert negotiate("vi-VN,vi;q=0.9,en;q=0.8") == "vi"
    assert negotiate("fr-FR,de;q=0.5") == "vi"
    assert negotiate("fr;q=1, en;q=0.4") == "en"
    assert negotiate(None) == "vi"
    assert negotiate("xx-;;;q=abc,") == "vi"
