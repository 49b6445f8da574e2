"""Received documents written out as edXML: an .edxml beside a plain document
(``write_beside``), an edXML's attachments unpacked into a folder (``arrive_as = "folder"``),
both idempotent for start-up recovery, streamed (memory measured), and ``lienthong export
--edxml`` for a document that did not come as edXML, through the real CLI and store."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from lienthong.config.schema import EdxmlSection, NodeConfig
from lienthong.node.cli.main import main
from lienthong.node.documents.metadata import document_meta
from lienthong.node.edxml.build import build_document, write_document
from lienthong.node.edxml.export import FOLDER_SUFFIX, write_received_extras
from lienthong.node.edxml.intake import read_edxml
from lienthong.node.edxml.limits import Limits
from lienthong.node.edxml.mapping import edxml_meta
from lienthong.node.edxml.message import Attachment, EdxmlDocument
from lienthong.node.edxml.parse import parse_message
from lienthong.node.edxml.sinks import keep_in_memory
from lienthong.node.store.records import NewReceived
from tests.node.edxml.samples import full_document, full_header
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the English wording, so they ask for it (the default is Vietnamese;
    test_words.py shows the Vietnamese)."""
    monkeypatch.setenv("LIENTHONG_LANG", "en")


MID = "0123456789abcdef0123456789abcdef"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 300
META = {**document_meta({"number": "45/QĐ-UBND", "subject": "Về việc tổ chức hội nghị",
                         "type": "decision", "date": "2026-11-20", "signer": "Lê Văn Cường",
                         "urgency": "urgent", "issuer": "Văn phòng UBND tỉnh"}
                        ).as_envelope_meta()}


def _offices(tmp_path: Path, **edxml: object) -> tuple[Office, Office]:
    reactor = FakeReactor()
    ubnd = make_office(tmp_path, "ubnd", reactor)
    hdnd = make_office(tmp_path, "hdnd", reactor, port=7444)
    enrol(hdnd, ubnd)
    section = EdxmlSection(organ_id="000.00.02.H41", offices={"ubnd": "000.00.03.H41"},
                           **edxml)  # type: ignore[arg-type]
    hdnd.runtime.config = dataclasses.replace(hdnd.runtime.config, edxml=section)
    return ubnd, hdnd


def _config(tmp_path: Path, **edxml: object) -> NodeConfig:
    return _offices(tmp_path, **edxml)[1].runtime.config


def _received(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_write_beside_writes_an_edxml_beside_a_plain_document(tmp_path: Path) -> None:
    """A PDF with its metadata gets NAME.pdf.edxml: every field in its edXML place, the PDF
    as the one attachment, byte for byte, and lienthong's message ID as DocumentId."""
    config = _config(tmp_path, write_beside=True)
    final = _received(tmp_path / "inbox" / "ubnd", "QĐ-45.pdf", PDF)
    written = write_received_extras(config, final, message_id=MID, sender="ubnd", meta=META)
    assert written == final.parent / "QĐ-45.pdf.edxml"
    message = parse_message(written.read_bytes())
    assert isinstance(message, EdxmlDocument)
    h = message.header
    assert (h.code_number, h.code_notation, h.subject, h.signer_full_name, h.promulgation_date,
            h.type_name, h.other.priority, h.document_id, h.sender.organ_id,
            h.sender.organ_name, [o.organ_id for o in h.to]) == (
        "45", "QĐ-UBND", "Về việc tổ chức hội nghị", "Lê Văn Cường", "2026-11-20",
        "Quyết định", "1", MID, "000.00.03.H41", "Văn phòng UBND tỉnh", ["000.00.02.H41"])
    assert [(a.name, a.data) for a in message.attachments] == [("QĐ-45.pdf", PDF)]
    assert sorted(os.listdir(final.parent)) == ["QĐ-45.pdf", "QĐ-45.pdf.edxml"]  # no temp left


def test_without_write_beside_nothing_is_written(tmp_path: Path) -> None:
    config = _config(tmp_path)
    final = _received(tmp_path / "inbox" / "ubnd", "a.pdf", PDF)
    assert write_received_extras(config, final, message_id=MID, sender="ubnd", meta=META) is None
    assert os.listdir(final.parent) == ["a.pdf"]


def test_write_beside_is_idempotent_when_recovering(tmp_path: Path) -> None:
    """Start-up recovery after a crash: a temporary file left half written is replaced; the
    finished .edxml, once there, is not written twice."""
    config = _config(tmp_path, write_beside=True)
    final = _received(tmp_path / "inbox" / "ubnd", "a.pdf", PDF)
    (final.parent / f".edxml-{MID}.edxml.tmp").write_bytes(b"<half")
    first = write_received_extras(config, final, message_id=MID, sender="ubnd", meta=META,
                                  recovering=True)
    assert first is not None and parse_message(first.read_bytes()).attachments[0].data == PDF  # type: ignore[union-attr]
    assert write_received_extras(config, final, message_id=MID, sender="ubnd", meta=META,
                                 recovering=True) is None
    assert sorted(os.listdir(final.parent)) == ["a.pdf", "a.pdf.edxml"]


def _edxml_meta(message: EdxmlDocument, name: str) -> dict[str, object]:
    return {"kind": "document", "edxml": edxml_meta(message, file_name=name)}


def test_a_received_edxml_is_unpacked_into_a_folder(tmp_path: Path) -> None:
    """arrive_as = "folder": NAME.edxml.files/ holds each attachment under its own name, byte
    for byte; a half-made folder a crash left is replaced; recovering twice writes once."""
    config = _config(tmp_path, arrive_as="folder")
    message = full_document()
    final = _received(tmp_path / "inbox" / "tinhuy", "NQ-12.edxml", build_document(message))
    (final.parent / f".edxml-{MID}.files.tmp").mkdir()
    (final.parent / f".edxml-{MID}.files.tmp" / "1.part").write_bytes(b"half")
    folder = write_received_extras(config, final, message_id=MID, sender="tinhuy",
                                   meta=_edxml_meta(message, final.name), recovering=True)
    assert folder == final.parent / ("NQ-12.edxml" + FOLDER_SUFFIX)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        a.name: a.data for a in message.attachments}
    assert write_received_extras(config, final, message_id=MID, sender="tinhuy",
                                 meta=_edxml_meta(message, final.name), recovering=True) is None
    assert sorted(os.listdir(final.parent)) == ["NQ-12.edxml", "NQ-12.edxml.files"]


def test_streamed_edxml_is_the_built_edxml() -> None:
    """write_document (attachments encoded block by block) writes build_document's bytes."""
    message = full_document()
    out = io.BytesIO()

    def blocks(number: int) -> list[bytes]:
        data = message.attachments[number - 1].data
        return [data[i:i + 1000 * 57] for i in range(0, len(data), 1000 * 57)]
    write_document(message, out, blocks)
    assert out.getvalue() == build_document(message)


def test_reading_a_large_edxml_holds_no_attachment(tmp_path: Path) -> None:
    """A 24 MiB edXML with four attachments: reading it (the outbox) and unpacking it (the
    inbox) each peak under 2 MiB, a twelfth of the file (tracemalloc)."""
    atts = tuple(Attachment(name=f"phan-{i}.pdf", data=os.urandom(4_500_000), content_id=str(i))
                 for i in range(1, 5))
    message = EdxmlDocument(header=full_header(), attachments=atts)
    final = _received(tmp_path / "inbox" / "tinhuy", "big.edxml", build_document(message))
    size = final.stat().st_size
    config = _config(tmp_path, arrive_as="folder")
    digests = {a.name: hashlib.sha256(a.data).hexdigest() for a in atts}
    del atts, message
    limits = Limits(max_bytes=64 << 20, max_attachment_bytes=64 << 20)
    tracemalloc.start()
    try:
        read_edxml(final, limits)
        _, read_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        folder = write_received_extras(config, final, message_id=MID, sender="tinhuy",
                                       meta={"kind": "document", "edxml": {}})
        _, unpack_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 24_000_000
    assert read_peak < 2 << 20 and unpack_peak < 2 << 20, (read_peak, unpack_peak)
    assert folder is not None
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir()} == digests


def test_export_cli_writes_a_plain_received_document_as_edxml(tmp_path: Path) -> None:
    """``lienthong export --edxml ID`` on a PDF received with a sidecar (not edXML), through
    the real CLI and store: the .edxml has its metadata and the PDF as its attachment."""
    ubnd, hdnd = _offices(tmp_path)
    config = hdnd.runtime.config
    toml = config.source.read_text(encoding="utf-8")
    config.source.write_text(toml + '\n[edxml]\norgan_id = "000.00.02.H41"\n'
                             '[edxml.offices]\nubnd = "000.00.03.H41"\n', encoding="utf-8")
    final = _received(config.inbox / "ubnd", "QĐ-45.pdf", PDF)
    store = hdnd.store
    store.begin_publish(NewReceived(
        sender_node_id=ubnd.node_id, message_id=MID, name="QĐ-45.pdf",
        stored_path=str(final.relative_to(config.home)), size=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(), header_token="x.y.z", meta=META), NOW)
    store.mark_stored(ubnd.node_id, MID, "receipt-token", NOW)
    out = tmp_path / "qlvb"
    result = CliRunner().invoke(main, ["export", "--edxml", MID, "--out", str(out), "--home",
                                       str(config.home)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Wrote {out / 'QĐ-45.pdf.edxml'}" in result.output
    vi = CliRunner().invoke(main, ["--lang", "vi", "export", "--edxml", MID, "--out",
                                   str(tmp_path / "vi"), "--home", str(config.home)])
    assert f"Đã ghi {tmp_path / 'vi' / 'QĐ-45.pdf.edxml'}" in vi.output
    message = read_edxml(out / "QĐ-45.pdf.edxml", Limits(), keep_in_memory)
    assert isinstance(message, EdxmlDocument)
    assert message.header.subject == "Về việc tổ chức hội nghị"
    assert message.header.sender.organ_id == "000.00.03.H41"
    assert message.header.document_id == MID
    assert [(a.name, a.data) for a in message.attachments] == [("QĐ-45.pdf", PDF)]
    again = CliRunner().invoke(main, ["--lang", "en", "export", "--edxml", MID, "--out",
                                      str(out), "--home", str(config.home)],
                               catch_exceptions=False)
    assert again.exit_code == 2 and "already exists" in again.output
