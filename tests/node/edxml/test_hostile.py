"""Hostile edXML (issue 21): each refused with a reason a clerk can act on, and memory stays
bounded (tracemalloc measures the parser's peak on each)."""
from __future__ import annotations

import base64
import tracemalloc

import pytest

from lienthong.node.edxml.limits import EdxmlError, Limits
from lienthong.node.edxml.parse import parse_message
from tests.node.edxml import samples

HOSTILE = {
    "billion laughs": (samples.BILLION_LAUGHS, "DOCTYPE"),
    "external entity (file)": (samples.EXTERNAL_FILE, "DOCTYPE"),
    "external entity (network)": (samples.EXTERNAL_NETWORK, "DOCTYPE"),
    "a DOCTYPE": (samples.PLAIN_DOCTYPE, "DOCTYPE"),
    "base64 that does not decode": (samples.BAD_BASE64, "not valid base64"),
    "an element from another namespace": (samples.FOREIGN_SUBJECT, "namespace"),
    "the root in another namespace": (samples.WRONG_ROOT_NAMESPACE, "namespace"),
    "a field given twice": (samples.TWO_SUBJECTS, "where one is allowed"),
    "not XML": (b"%PDF-1.7 not xml", "not well-formed"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_is_refused_with_a_reason(case: str) -> None:
    data, words = HOSTILE[case]
    tracemalloc.start()
    try:
        with pytest.raises(EdxmlError) as caught:
            parse_message(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert words in caught.value.reason
    assert peak < 2 * 1024 * 1024, f"{case}: peak {peak} bytes"


def test_a_message_over_the_limit_is_refused_before_parsing() -> None:
    """A 64 MiB claim against a 1 MiB limit: refused by its length, nothing parsed."""
    limits = Limits(max_bytes=1024 * 1024)
    data = b"<" * (limits.max_bytes + 1)
    tracemalloc.start()
    try:
        with pytest.raises(EdxmlError) as caught:
            parse_message(data, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == "edxml-too-large"
    assert peak < 64 * 1024


def test_an_attachment_larger_than_allowed_is_refused_before_decoding() -> None:
    """Base64 holding 6 MB against a 1 MB attachment limit: refused at the first chunk beyond
    the limit; the base64 text is never held whole, so the peak stays well under the input's
    size (which the test itself holds)."""
    payload = base64.b64encode(b"\0" * (6 * 1024 * 1024))
    data = samples.minimal("<edXML:Subject>x</edXML:Subject>").replace(b"aGVsbG8=", payload)
    limits = Limits(max_bytes=len(data), max_attachment_bytes=1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(EdxmlError) as caught:
            parse_message(data, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than the 1048576 bytes this office accepts" in caught.value.reason
    assert peak < len(data) // 2, peak
