"""Document numbers (số, ký hiệu): the two notations offices write, checked against the type (pure).

State bodies (Decree 30/2020/NĐ-CP) write ``number[/year]/TYPE-ISSUER``: ``05/CT-UBND``,
``12/2026/NQ-HĐND``; an official letter (công văn) has no type code, its notation is
``number/ISSUER-UNIT`` (``45/UBND-VP``). Party bodies (Guidance 36-HD/VPTW) write
``number-TYPE/ISSUER``: ``12-NQ/TU``, ``36-HD/VPTW``, ``123-CV/VPTU``.

:func:`check_number` accepts a number in either notation (or only the one an office is
configured for), and refuses one whose type code names another type than the document's
(``NQ`` on a directive). Codes are compared folded (NFC, upper case, no diacritics, Đ as D),
so ``QD`` and ``QĐ``, ``Hdnd`` and ``HĐND`` are the same code; the number itself is kept as
written, in NFC.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from lienthong.node.core.errors import NodeError

NOTATIONS = ("any", "state", "party")
#: The type code(s) a document type's number carries. Types not listed (publication, other,
#: an office's own types) accept any code.
TYPE_CODES: Mapping[str, tuple[str, ...]] = {
    "resolution": ("NQ",),
    "decision": ("QĐ", "QyĐ"),
    "directive": ("CT",),
    "report": ("BC",),
    "programme": ("CTr",),
    "conclusion": ("KL",),
    "announcement": ("TB",),
    "letter": ("CV",),
}
_EXAMPLES = {"state": "05/CT-UBND or 12/2026/NQ-HĐND", "party": "12-NQ/TU or 36-HD/VPTW"}
_LETTERS = r"[^\W\d_]"
_CODE = rf"{_LETTERS}[^\W_]*"
_STATE = re.compile(rf"(\d{{1,6}})(?:/(\d{{4}}))?/({_CODE})-({_CODE}(?:-{_CODE})*)")
_PARTY = re.compile(rf"(\d{{1,6}})-({_CODE})/({_CODE}(?:[-/]{_CODE})*)")


class NumberError(NodeError, ValueError):
    """A number that fits no allowed notation or does not match the document's type."""

    code = "bad-number"


@dataclass(frozen=True, slots=True)
class DocumentNumber:
    """A parsed number: its notation, serial, year (State, optional), type code and issuer.

    ``type_code`` is None for a State letter (``45/UBND-VP``: the first code is the issuer).
    """

    text: str
    notation: str
    serial: int
    year: int | None
    type_code: str | None
    issuer: str


def fold(code: str) -> str:
    """The form codes are compared in: 'QĐ' -> 'QD', 'HĐND' -> 'HDND', 'CTr' -> 'CTR'."""
    text = unicodedata.normalize("NFC", code).upper().replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


_KNOWN_CODES = {fold(code): name for name, codes in TYPE_CODES.items() for code in codes}


def parse_number(text: str) -> DocumentNumber:
    """``text`` (NFC, trimmed) as a State or Party number; NumberError if it is neither."""
    cleaned = unicodedata.normalize("NFC", text).strip()
    state = _STATE.fullmatch(cleaned)
    if state is not None:
        serial, year, first, rest = state.groups()
        if fold(first) in _KNOWN_CODES or "-" in rest:
            type_code, issuer = first, rest
        else:  # a letter: ISSUER-UNIT, no type code
            type_code, issuer = None, f"{first}-{rest}"
        return DocumentNumber(cleaned, "state", int(serial), int(year) if year else None,
                              type_code, issuer)
    party = _PARTY.fullmatch(cleaned)
    if party is not None:
        serial, code, issuer = party.groups()
        return DocumentNumber(cleaned, "party", int(serial), None, code, issuer)
    raise NumberError(f"number: {text!r} is written in neither notation; write it as a State "
                      f"body does, e.g. {_EXAMPLES['state']}, or as a Party body does, e.g. "
                      f"{_EXAMPLES['party']}")


def check_number(text: str, doc_type: str | None, *, notation: str = "any") -> str:
    """The number as it will be sent (NFC), or NumberError naming the expected form.

    ``notation``: ``any`` (either), ``state`` or ``party`` (what the sending office issues).
    ``doc_type``: the document's canonical type; its code must be the number's.
    """
    if notation not in NOTATIONS:
        raise ValueError(f"notation {notation!r} is unknown")
    number = parse_number(text)
    if notation != "any" and number.notation != notation:
        raise NumberError(f"number: {number.text!r} is in {number.notation} notation, but this "
                          f"office writes numbers in {notation} notation, e.g. "
                          f"{_EXAMPLES[notation]}")
    codes = TYPE_CODES.get(doc_type or "")
    if not codes:
        return number.text
    if number.type_code is None:
        if doc_type == "letter":
            return number.text
        raise NumberError(f"number: {number.text!r} has no type code, but a {doc_type} must "
                          f"carry {codes[0]}, e.g. {_example(codes[0], number.notation)}")
    found = fold(number.type_code)
    if found in {fold(code) for code in codes}:
        return number.text
    named = _KNOWN_CODES.get(found)
    says = f"{number.type_code} ({named})" if named else number.type_code
    raise NumberError(f"number: {number.text!r} says {says}, but this document is a {doc_type}; "
                      f"its number carries {codes[0]}, e.g. {_example(codes[0], number.notation)}")


def _example(code: str, notation: str) -> str:
    return f"05/{code}-UBND" if notation == "state" else f"12-{code}/TU"
