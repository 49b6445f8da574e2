"""The edXML copies beside received documents survive a crash (docs/design.md §6, failpoint
``receiver-after-commit-before-copies``): the ``edxml_copies_due`` row committed with the
document makes start-up recovery write the copies the crash interrupted, once, replacing
what the crash left half made. Real store, keys and folders (tests/node/runtimehelp.py)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from lienthong.config.schema import EdxmlSection
from lienthong.node.documents.metadata import document_meta
from lienthong.node.edxml.build import build_document
from lienthong.node.edxml.mapping import edxml_meta
from lienthong.node.edxml.parse import parse_message
from lienthong.node.inbox.offers import Offers
from lienthong.node.store.records import NewReceived
from tests.node.edxml.samples import full_document
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office

PLAIN, EDXML, OTHER = "1" * 32, "2" * 32, "3" * 32


def _office(tmp_path: Path) -> tuple[Office, Office]:
    reactor = FakeReactor()
    hdnd = make_office(tmp_path, "hdnd", reactor)
    tinhuy = make_office(tmp_path, "tinhuy", reactor, port=7444)
    enrol(hdnd, tinhuy)
    hdnd.runtime.config = dataclasses.replace(hdnd.runtime.config, edxml=EdxmlSection(
        organ_id="000.00.02.H41", offices={"tinhuy": "000.00.01.H41"}, arrive_as="folder",
        write_beside=True))
    return hdnd, tinhuy


def _stored(office: Office, sender: Office, mid: str, name: str, data: bytes,
            meta: dict[str, Any], *, copies: bool) -> Path:
    """A document published and committed ``stored``, as if the node died right after."""
    config = office.runtime.config
    folder = config.inbox / sender.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    office.store.begin_publish(NewReceived(
        sender_node_id=sender.node_id, message_id=mid, name=name,
        stored_path=str((folder / name).relative_to(config.home)), size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), header_token="h.e.ader", meta=meta,
        edxml_copies=copies), NOW)
    office.store.mark_stored(sender.node_id, mid, "receipt", NOW)
    return folder / name


def test_recovery_writes_the_copies_a_crash_interrupted_once(tmp_path: Path) -> None:
    hdnd, tinhuy = _office(tmp_path)
    message = full_document()
    plain = _stored(hdnd, tinhuy, PLAIN, "CV-7.pdf", b"%PDF-1.7 cong van",
                    document_meta({"subject": "Công văn 7"}).as_envelope_meta(), copies=True)
    edxml = _stored(hdnd, tinhuy, EDXML, "NQ-12.edxml", build_document(message),
                    {"kind": "document", "edxml": edxml_meta(message, file_name="NQ-12.edxml")},
                    copies=True)
    # Copies not due (written before the crash): left alone.
    _stored(hdnd, tinhuy, OTHER, "other.pdf", b"%PDF", {"kind": "document"}, copies=False)
    # The crash came while the folder was being made.
    half = plain.parent / f".edxml-{EDXML}.files.tmp"
    half.mkdir()
    (half / "1.part").write_bytes(b"half")
    assert sorted(hdnd.store.edxml_copies_due()) == [(tinhuy.node_id, PLAIN),
                                                      (tinhuy.node_id, EDXML)]
    done: list[Any] = []
    Offers(hdnd.runtime).recover().addBoth(done.append)
    assert done == [None]
    beside = parse_message((plain.parent / "CV-7.pdf.edxml").read_bytes())
    assert beside.attachments[0].data == b"%PDF-1.7 cong van"  # type: ignore[union-attr]
    folder = edxml.parent / "NQ-12.edxml.files"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        a.name: a.data for a in message.attachments}
    assert hdnd.store.edxml_copies_due() == []
    assert sorted(os.listdir(plain.parent)) == ["CV-7.pdf", "CV-7.pdf.edxml", "NQ-12.edxml",
                                                "NQ-12.edxml.files", "other.pdf"]
    # A second start finds nothing due and writes nothing more.
    Offers(hdnd.runtime).recover().addBoth(done.append)
    assert len(os.listdir(plain.parent)) == 5


def test_a_crash_after_the_copies_but_before_their_row_went_writes_nothing_twice(
        tmp_path: Path) -> None:
    """The copies were written (each appears whole by one link or rename) but the row was not
    removed: recovery finds them there and only removes the row."""
    hdnd, tinhuy = _office(tmp_path)
    plain = _stored(hdnd, tinhuy, PLAIN, "CV-7.pdf", b"%PDF-1.7 cong van",
                    document_meta({"subject": "Công văn 7"}).as_envelope_meta(), copies=True)
    (plain.parent / "CV-7.pdf.edxml").write_bytes(b"the finished copy")
    Offers(hdnd.runtime).recover()
    assert (plain.parent / "CV-7.pdf.edxml").read_bytes() == b"the finished copy"
    assert sorted(os.listdir(plain.parent)) == ["CV-7.pdf", "CV-7.pdf.edxml"]
    assert hdnd.store.edxml_copies_due() == []


def test_copies_that_cannot_be_made_are_audited_and_not_retried(tmp_path: Path) -> None:
    """A received edXML that does not parse (a peer's bug): audited once, its row removed."""
    hdnd, tinhuy = _office(tmp_path)
    _stored(hdnd, tinhuy, EDXML, "bad.edxml", b"<not-edxml/>",
            {"kind": "document", "edxml": {"document_id": "x"}}, copies=True)
    Offers(hdnd.runtime).recover()
    failed = hdnd.store.audit_entries(kind="edxml-extras-failed")
    assert len(failed) == 1 and "not an edXML message" in failed[0].detail["reason"]
    assert hdnd.store.edxml_copies_due() == []
    assert not [p for p in (hdnd.runtime.config.inbox / "tinhuy").iterdir()
                if p.name.startswith(".edxml-")]  # the temporary folder is gone


def test_abandoned_publication_forgets_its_document_id_and_copies(tmp_path: Path) -> None:
    hdnd, tinhuy = _office(tmp_path)
    message = full_document()
    hdnd.store.begin_publish(NewReceived(
        sender_node_id=tinhuy.node_id, message_id=EDXML, name="NQ.edxml",
        stored_path="inbox/tinhuy/NQ.edxml", size=1, sha256="0" * 64, header_token="h",
        meta={"kind": "document", "edxml": edxml_meta(message, file_name="NQ.edxml")},
        edxml_copies=True), NOW)
    document_id = message.header.document_id or ""
    assert hdnd.store.received_by_document_id(document_id) is None  # not stored yet
    hdnd.store.abandon_publish(tinhuy.node_id, EDXML, NOW)
    assert hdnd.store.edxml_copies_due() == []
    hdnd.store.begin_publish(NewReceived(
        sender_node_id=tinhuy.node_id, message_id=EDXML, name="NQ.edxml",
        stored_path="inbox/tinhuy/NQ.edxml", size=1, sha256="0" * 64, header_token="h",
        meta={"kind": "document", "edxml": edxml_meta(message, file_name="NQ.edxml")}), NOW)
    hdnd.store.mark_stored(tinhuy.node_id, EDXML, "receipt", NOW)
    assert hdnd.store.received_by_document_id(document_id) == (EDXML, tinhuy.node_id)
