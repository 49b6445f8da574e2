"""Sidecars in the outbox (node/outbox/sidecars.py): read beside the document, refused when
a link, and carried to sent/ (node/outbox/sent.py) or with a refused document to failed/."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lienthong.node.core.access import AccessPolicy
from lienthong.node.documents.metadata import DocumentMeta
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.outbox.sent import sidecar_to_sent
from lienthong.node.outbox.sidecars import SPOOLED_SIDECAR, Prepared, read_sidecar

MID = "0123456789abcdef0123456789abcdef"


def test_read_sidecar_reads_beside_the_document_and_refuses_links(tmp_path: Path) -> None:
    """The sidecar is read through the outbox walk; a symlinked sidecar is refused."""
    outbox = tmp_path / "outbox"
    (outbox / "peer").mkdir(parents=True)
    doc = outbox / "peer" / "a.pdf"
    doc.write_bytes(b"12345")
    assert read_sidecar(outbox, doc).data is None
    (outbox / "peer" / "a.pdf.meta.toml").write_text('number = "1"\n')
    found = read_sidecar(outbox, doc)
    assert (found.data, found.document_size) == (b'number = "1"\n', 5)
    os.unlink(outbox / "peer" / "a.pdf.meta.toml")
    (tmp_path / "elsewhere.toml").write_text('number = "2"\n')
    os.symlink(tmp_path / "elsewhere.toml", outbox / "peer" / "a.pdf.meta.toml")
    with pytest.raises(MetadataError, match="symbolic link"):
        read_sidecar(outbox, doc)


def test_sidecar_travels_to_sent_or_with_a_refused_document(tmp_path: Path) -> None:
    """The spooled sidecar ends beside the sent document; a refused take sends it to failed/."""
    spool, sent = tmp_path / "spool", tmp_path / "sent"
    (spool / MID).mkdir(parents=True)
    sent.mkdir()
    (spool / MID / SPOOLED_SIDECAR).write_text('number = "7"\n')
    sidecar_to_sent(spool / MID, sent / "cv.pdf", AccessPolicy())
    sidecar_to_sent(spool / MID, sent / "cv.pdf", AccessPolicy())  # idempotent
    assert (sent / "cv.pdf.meta.toml").read_text() == 'number = "7"\n'
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "x.pdf.meta.toml").write_text("urgency = 'khan'\n")
    prepared = Prepared("e" * 32, DocumentMeta(), outbox / "x.pdf.meta.toml", spool)
    prepared.abandon(tmp_path / "failed")
    assert (tmp_path / "failed" / "x.pdf.meta.toml").exists()
