"""Reading an edXML file from the outbox: the size is checked before a byte is read."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from lienthong.node.edxml.build import build_document
from lienthong.node.edxml.intake import read_edxml
from lienthong.node.edxml.limits import EdxmlError, Limits
from lienthong.node.edxml.message import EdxmlDocument
from lienthong.node.edxml.sinks import keep_in_memory
from tests.node.edxml.samples import full_document


def test_a_1_gib_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A (sparse) 1 GiB .edxml: refused by its size; the peak memory stays tiny."""
    path = tmp_path / "huge.edxml"
    with open(path, "wb") as handle:
        handle.truncate(1024 ** 3)
    tracemalloc.start()
    try:
        with pytest.raises(EdxmlError) as caught:
            read_edxml(path, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == "edxml-too-large"
    assert "1073741824 bytes" in caught.value.reason
    assert peak < 64 * 1024


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real.edxml").write_bytes(build_document(full_document()))
    (tmp_path / "link.edxml").symlink_to(tmp_path / "real.edxml")
    with pytest.raises(OSError):
        read_edxml(tmp_path / "link.edxml", Limits())
    assert read_edxml(tmp_path / "real.edxml", Limits(), keep_in_memory) == full_document()


def test_the_outbox_reads_the_header_and_drops_the_attachments(tmp_path: Path) -> None:
    """By default the attachments are decoded (checked) and counted, not kept."""
    (tmp_path / "real.edxml").write_bytes(build_document(full_document()))
    message = read_edxml(tmp_path / "real.edxml", Limits())
    assert isinstance(message, EdxmlDocument)
    assert message.header == full_document().header
    assert [(a.name, a.data, a.length) for a in message.attachments] == [
        (a.name, b"", len(a.data)) for a in full_document().attachments]
