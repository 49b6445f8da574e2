"""edXML between two real nodes (issue 21): a message with every header field and two
attachments goes from tinhuy's outbox to hdnd, arrives as the edXML and as a folder of its
attachments, and exports with the same header and byte-identical attachments; a replacement
names it; a status message and a recall dropped as edXML become signed statuses and recalls;
hostile files are refused into failed/ with nothing sent."""
from __future__ import annotations

import json
from pathlib import Path

from lienthong.node.edxml.build import build_document, build_status
from lienthong.node.edxml.message import (
    RECALL,
    Business,
    EdxmlDocument,
    ResponseFor,
    StatusMessage,
)
from lienthong.node.edxml.parse import parse_message
from tests.integration.harness import TestNode, sidecar, wait_for
from tests.integration.test_documents import audit_of, cli, documents_sent, failed_reason
from tests.node.edxml import samples

EDXML = {
    "tinhuy": '[edxml]\norgan_id = "000.00.01.H41"\n'
              '[edxml.offices]\nhdnd = "000.00.02.H41"\n',
    "hdnd": '[edxml]\norgan_id = "000.00.02.H41"\narrive_as = "folder"\n'
            '[edxml.offices]\ntinhuy = "000.00.01.H41"\n',
}


def configure(node: TestNode) -> None:
    config = node.home / "lienthong.toml"
    config.write_text(config.read_text() + "\n" + EDXML[node.name])


def sent_count(node: TestNode) -> int:
    return sum(1 for d in documents_sent(node) if d.state == "sent")


def test_edxml_round_trip_replacement_status_recall_and_refusals(network, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nodes = network("tinhuy", "hdnd")
    tinhuy, hdnd = nodes["tinhuy"], nodes["hdnd"]
    for node in nodes.values():
        configure(node)
        node.start()
    original = samples.full_document()
    tinhuy.drop("hdnd", "NQ-12.edxml", build_document(original))
    wait_for(lambda: sent_count(tinhuy) == 1, timeout=30, what="the edXML to be receipted")
    mid = documents_sent(tinhuy)[0].message_id
    inbox = hdnd.inbox / "tinhuy"
    meta = json.loads(sidecar(inbox / "NQ-12.edxml").read_text())["meta"]
    assert {k: meta[k] for k in ("type", "number", "date", "due", "signer", "urgency")} == {
        "type": "resolution", "number": "12-NQ/TU", "date": "2026-11-20", "due": "2026-11-30",
        "signer": "Nguyễn Văn An", "urgency": "flash"}
    # Arrives as a folder of its attachments too, byte for byte.
    folder = inbox / "NQ-12.edxml.files"
    wait_for(lambda: len(list(folder.glob("*"))) == 2, timeout=20, what="the unpacked folder")
    for attachment in original.attachments:
        assert (folder / attachment.name).read_bytes() == attachment.data

    exported = cli(hdnd, "export", "--edxml", mid, "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    again = parse_message((tmp_path / "out" / "NQ-12.edxml").read_bytes())
    assert again == original  # every header field, the marker, the attachments' bytes

    # A replacement names the first by its edXML DocumentId.
    replacement = samples.replacement(original.header.document_id or "")
    tinhuy.drop("hdnd", "NQ-13.edxml", build_document(replacement))
    wait_for(lambda: sent_count(tinhuy) == 2, timeout=30, what="the replacement")
    newest = documents_sent(tinhuy)[0]
    assert newest.meta["replaces"] == mid and newest.meta["edxml"]["business"] == "replace"

    # Hostile files: refused into failed/ with a reason, audited, nothing sent.
    for name, data in (("laughs.edxml", samples.BILLION_LAUGHS),
                       ("ubnd.edxml", build_document(samples.full_document(to=(samples.UBND,))))):
        tinhuy.drop("hdnd", name, data)
        wait_for(lambda n=name: (tinhuy.home / "failed" / f"{n}.reason.txt").exists(),
                 timeout=20, what=f"{name} to be refused")
    assert "DOCTYPE" in failed_reason(tinhuy, "laughs.edxml")
    assert "000.00.03.H41" in failed_reason(tinhuy, "ubnd.edxml")
    codes = {e["code"] for e in audit_of(tinhuy, "refused")}
    assert {"bad-edxml", "edxml-wrong-recipient"} <= codes
    assert len(documents_sent(tinhuy)) == 2

    # hdnd's system reports "registered" as an edXML status message: a signed status.
    status = StatusMessage(sender=samples.HDND, status_code="03", description="152/VP",
                           response_for=ResponseFor(document_id=original.header.document_id))
    hdnd.drop("tinhuy", "status-03.edxml", build_status(status))
    wait_for(lambda: any(s.status == "registered" for s in tinhuy.query("statuses_for", mid)),
             timeout=30, what="the status at the sender")
    row = next(s for s in tinhuy.query("statuses_for", mid) if s.status == "registered")
    assert row.register_number == "152/VP"
    statuses = cli(tinhuy, "export", "--edxml", mid, "--statuses", "--out", str(tmp_path / "st"))
    assert statuses.returncode == 0, statuses.stderr  # the sender exports the statuses it got
    written = list((tmp_path / "st").glob("*-03.edxml"))
    assert len(written) == 1, statuses.stdout
    exported_status = parse_message(written[0].read_bytes())
    assert isinstance(exported_status, StatusMessage)
    assert exported_status.status_code == "03" and exported_status.description == "152/VP"

    # tinhuy's system recalls the replacement's predecessor with an edXML recall.
    recall = EdxmlDocument(header=original.header, business=Business(
        doc_type=RECALL, reason="Ban hành nhầm", document_id=original.header.document_id))
    tinhuy.drop("hdnd", "recall.edxml", build_document(recall))
    wait_for(lambda: (hdnd.home / "recalled" / "tinhuy" / "NQ-12.edxml").exists(), timeout=30,
             what="hdnd to recall the document")
    assert "edxml-recall-queued" in tinhuy.audit_kinds()
