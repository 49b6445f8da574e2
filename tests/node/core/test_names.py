"""Names: which outbox entries are noise, and how untrusted names are made safe."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.node.core.names import (
    FALLBACK_NAME,
    MAX_NAME_BYTES,
    TEMP_PREFIX,
    is_noise,
    is_safe_component,
    safe_file_name,
    unique_name,
)

VIET_NFC = unicodedata.normalize("NFC", "Công văn số 12 - Nguyễn Thị Hường.pdf")
VIET_NFD = unicodedata.normalize("NFD", VIET_NFC)


@pytest.mark.parametrize("name", [
    ".hidden", "~$Báo cáo.docx", "~WRL0001.tmp", ".~lock.x.odt#", "report.pdf.part",
    "x.crdownload", "x.tmp", "X.TMP", ".x.swp", "x.swx", "x~", "#x#", "4913", "Thumbs.db",
    "desktop.ini", ".DS_Store", "._report.pdf", TEMP_PREFIX + "abc.part", "report.pdf.meta.toml",
    ".#lock", ".goutputstream-ABC123", "",
])
def test_noise_names_are_noise(name: str) -> None:
    """Every editor/browser/OS temporary or sidecar name from §3.3 is never taken."""
    assert is_noise(name)


@pytest.mark.parametrize("name", [
    "report.pdf", VIET_NFC, VIET_NFD, "4913.pdf", "notes.toml", "a#b.docx", "~report.pdf",
    "partner.pdf", "tmp.pdf",
])
def test_documents_are_not_noise(name: str) -> None:
    """Ordinary document names, including ones resembling noise, are taken."""
    assert not is_noise(name)


@pytest.mark.parametrize(("given_name", "expected"), [
    ("../x", "x"),
    ("..\\x", "x"),
    ("a/../../b.pdf", "b.pdf"),
    ("/etc/passwd", "passwd"),
    ("C:\\Windows\\x.pdf", "x.pdf"),
    ("\\\\server\\share\\x.pdf", "x.pdf"),
    ("\\\\?\\C:\\x.pdf", "x.pdf"),
    ("dir/file.pdf/", "file.pdf"),
    (".", FALLBACK_NAME),
    ("..", FALLBACK_NAME),
    ("", FALLBACK_NAME),
    ("...  ", FALLBACK_NAME),
    ("a\x00b.pdf", "ab.pdf"),
    ("a\nb\r\t\x1b[31m.pdf", "ab[31m.pdf"),
    ("a\x7f\x85b.pdf", "ab.pdf"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("zero\u200bwidth\ufeff.pdf", "zerowidth.pdf"),
    ('a<b>c:d"e|f?g*h.pdf', "abcdefgh.pdf"),
    ("file.pdf:stream", "file.pdfstream"),
    ("report.pdf. . ", "report.pdf"),
    (" .hidden", "hidden"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("Aux.tar.gz", "_Aux.tar.gz"),
    ("COM1 .pdf", "_COM1 .pdf"),
    ("lpt9", "_lpt9"),
    ("COM\u00b9.pdf", "_COM\u00b9.pdf"),
    ("CONSOLE.pdf", "CONSOLE.pdf"),
    (TEMP_PREFIX + "payload.part", "lienthong-payload.part"),
    ("bad\udcff\udcfe.pdf", "bad.pdf"),
    ("x'); DROP TABLE receipts;--.pdf", "x'); DROP TABLE receipts;--.pdf"),
    ("-rf.pdf", "-rf.pdf"),
])
def test_safe_file_name_cases(given_name: str, expected: str) -> None:
    """The bad-input catalogue's name rows map to one harmless component."""
    assert safe_file_name(given_name) == expected


def test_safe_file_name_normalises_nfd_vietnamese() -> None:
    """A macOS-style NFD name comes out NFC, identical to the Windows spelling."""
    assert safe_file_name(VIET_NFD) == VIET_NFC
    assert len(VIET_NFC.encode()) < len(VIET_NFD.encode())


def test_nfd_vietnamese_over_255_bytes_is_normalised_before_truncation() -> None:
    """100 × 'Ệ' in NFD is 500 bytes; NFC first, then cut to ≤255 bytes on a letter boundary."""
    name = unicodedata.normalize("NFD", "Ệ" * 100) + ".pdf"
    result = safe_file_name(name)
    assert len(result.encode()) <= MAX_NAME_BYTES
    assert result.endswith(".pdf")
    assert set(result[:-4]) == {"Ệ"}  # only whole NFC letters, never half of one
    assert len(result[:-4]) == (MAX_NAME_BYTES - 4) // 3


def test_long_ascii_name_keeps_extension() -> None:
    """A long name is cut in its stem, never in its extension."""
    result = safe_file_name("a" * 400 + ".docx")
    assert result == "a" * (MAX_NAME_BYTES - 5) + ".docx"


def test_absurd_extension_is_not_kept_whole() -> None:
    """A 'suffix' longer than a real extension does not push the name out entirely."""
    result = safe_file_name("x." + "y" * 400)
    assert result.startswith("x.") and len(result.encode()) == MAX_NAME_BYTES


def test_max_bytes_leaves_room_for_a_suffix() -> None:
    """Callers that append ``.reason.txt`` can ask for a shorter result."""
    assert len(safe_file_name("b" * 300 + ".pdf", max_bytes=200).encode()) == 200


def test_unique_name_adds_counter_before_extension() -> None:
    """A clash gets ' (2)', then ' (3)', before the extension."""
    assert unique_name(set(), "a.pdf") == "a.pdf"
    assert unique_name({"a.pdf"}, "a.pdf") == "a (2).pdf"
    assert unique_name({"a.pdf", "a (2).pdf"}, "a.pdf") == "a (3).pdf"
    assert unique_name({"README"}, "README") == "README (2)"


def test_unique_name_nfc_and_nfd_clash() -> None:
    """An NFD name already in the folder clashes with the NFC candidate (ext4 keeps both)."""
    assert unique_name({VIET_NFD}, VIET_NFC) == VIET_NFC.replace(".pdf", " (2).pdf")
    assert unique_name({VIET_NFC}, VIET_NFD) == VIET_NFC.replace(".pdf", " (2).pdf")


def test_unique_name_case_variants_clash() -> None:
    """Báo cáo.pdf and BÁO CÁO.PDF are one file on SMB/NTFS/macOS, so they clash."""
    assert unique_name({"BÁO CÁO.PDF"}, "Báo cáo.pdf") == "Báo cáo (2).pdf"


def test_unique_name_with_callable() -> None:
    """A callable can say what exists (e.g. a real folder)."""
    taken = {"x.pdf", "x (2).pdf"}
    assert unique_name(lambda name: name in taken, "x.pdf") == "x (3).pdf"


def test_unique_name_gives_up_on_a_callable_that_always_clashes() -> None:
    """A callable that says everything exists cannot loop forever."""
    with pytest.raises(FileExistsError):
        unique_name(lambda name: True, "x.pdf")


def test_unique_name_stays_within_255_bytes() -> None:
    """The counter is fitted by shortening the stem, keeping the extension."""
    name = safe_file_name("Ư" * 200 + ".pdf")
    result = unique_name({name}, name)
    assert len(result.encode()) <= MAX_NAME_BYTES
    assert result.endswith(" (2).pdf")


_PIECES = ["/", "\\", ".", "..", " ", "CON", "com1", "\x00", "\n", "\u202e", "Ệ",
           unicodedata.normalize("NFD", "Ệ"), "e\u0301", "\u0301", ".pdf", TEMP_PREFIX, ":",
           "\udcff", "Ư" * 90, "a" * 120, "\u1100\u1161", "\u11a8"]
any_text = st.one_of(
    st.text(st.characters(codec=None, categories=None), max_size=400),
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=12).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_safe_file_name_is_always_one_safe_component(name: str) -> None:
    """For any text: one component, ≤255 bytes, NFC, never '.', '..', or a device name."""
    result = safe_file_name(name)
    assert is_safe_component(result)
    assert 0 < len(result.encode("utf-8")) <= MAX_NAME_BYTES
    assert result == unicodedata.normalize("NFC", result)
    assert "/" not in result and "\\" not in result and "\x00" not in result
    assert result not in (".", "..")
    assert safe_file_name(result) == result


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_safe_file_name_never_escapes_the_folder(tmp_path_factory: pytest.TempPathFactory,
                                                 name: str) -> None:
    """Joined to a real folder and resolved, the result is a direct child of that folder."""
    base = os.path.realpath(tmp_path_factory.getbasetemp() / "inbox")
    os.makedirs(base, exist_ok=True)
    joined = os.path.join(base, safe_file_name(name))
    resolved = os.path.realpath(joined)
    assert os.path.dirname(resolved) == base
    assert Path(resolved).is_relative_to(base)


@settings(max_examples=200, deadline=None)
@given(st.sets(any_text, max_size=6), any_text)
def test_unique_name_result_never_clashes(existing: set[str], name: str) -> None:
    """Whatever is in the folder, unique_name's answer of a safe name clashes with none of it."""
    safe = safe_file_name(name)
    result = unique_name(existing, safe)
    assert len(result.encode()) <= MAX_NAME_BYTES
    folded = {unicodedata.normalize("NFC", unicodedata.normalize("NFC", other).casefold())
              for other in existing}
    assert unicodedata.normalize("NFC", result.casefold()) not in folded
