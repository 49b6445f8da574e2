"""The status snapshot: what waits for whom, what the store says with the daemon down, and what
each document is and what became of it."""
from __future__ import annotations

import hashlib
import io
import json

from rich.console import Console

from lienthong.node.core.clock import parse_rfc3339
from lienthong.node.status.render import render_status
from lienthong.node.store.records import NewDispatch, NewReceived
from tests.node.audit.test_verify import T0, T2
from tests.node.statushelp import HOSTILE, NOW, Office, peer, snapshot_of


def test_snapshot_says_what_waits_for_whom(office: Office) -> None:
    """Queue depth, bytes and the oldest waiting document with its age, per peer."""
    snap = snapshot_of(office)
    ubnd = peer(snap, "ubnd")
    assert ubnd["queue"]["count"] == 1 and ubnd["queue"]["bytes"] == 2048
    oldest = ubnd["queue"]["oldest"]
    assert oldest["name"] == "Tờ trình 7.pdf" and oldest["message_id"] == office.queued_id
    assert oldest["age_seconds"] == NOW - parse_rfc3339(T0)
    assert ubnd["failures"] == 1 and ubnd["last_error"] == "Connection refused"
    hdnd = peer(snap, "hdnd")
    assert hdnd["queue"] == {"count": 0, "bytes": 0, "oldest": None}
    assert hdnd["sent"]["documents"] == 1 and hdnd["received"]["documents"] == 1
    assert snap["outbox"]["dispatches"] == {"sending": 1, "sent": 1, "failed": 0}
    assert snap["outbox"]["deliveries"] == {"queued": 1, "delivered": 1, "failed": 0}
    assert snap["today"]["received"] == 1 and snap["today"]["sent"] == 1
    assert {r["name"]: r["state"] for r in snap["recent_received"]} == {
        "Báo cáo kỳ họp 9.txt": "stored", HOSTILE: "publishing"}
    json.dumps(snap)  # plain values only


def test_a_stopped_daemon_is_critical_and_the_store_still_speaks(office: Office) -> None:
    """Without the daemon: a critical warning saying how to start it, store data still shown."""
    snap = snapshot_of(office)
    assert snap["health"] == "critical"
    assert snap["warnings"][0]["code"] == "daemon-down"
    assert f"lienthong run {office.honest.home}" in snap["warnings"][0]["message"]
    assert snap["daemon"]["running"] is False and snap["transfers"] == []


def test_status_shows_what_each_document_is_and_what_became_of_it(office: Office) -> None:
    """Issue 7: the signed metadata (type, number, urgency, subject, confidentiality) and the
    latest processing status are shown beside each document, in the JSON and on screen; a
    peer's metadata is inert text like its file names."""
    from lienthong.node.store.records import NewStatus
    store = office.store()
    sent_id, got_id = "a7" * 16, "b8" * 16
    me, hdnd = office.honest.keys.node_id, office.honest.peer.node_id
    try:
        store.add_dispatch(NewDispatch(
            message_id=sent_id, name="Nghị quyết 12.pdf", target="hdnd",
            spool_dir=str(office.honest.home / "spool" / sent_id), header_token="h.e.s",
            size=10, sha256="a" * 64, ciphertext_size=60, priority=0,
            meta={"kind": "document", "type": "resolution", "number": "12-NQ/TU",
                  "urgency": "flash", "confidentiality": "secret",
                  "subject": "Về chuyển đổi số"}, recipients=(hdnd,)), T0)
        store.begin_publish(NewReceived(
            sender_node_id=hdnd, message_id=got_id, name="Công văn 9.txt",
            stored_path="inbox/hdnd/y", size=5, sha256="b" * 64, header_token="h.x.z",
            meta={"type": "report", "number": "9/BC-HĐND", "urgency": "normal",
                  "subject": HOSTILE}), T2)
        for message_id, signer, status in ((sent_id, hdnd, "registered"),
                                           (sent_id, hdnd, "completed"),
                                           (got_id, me, "assigned")):
            store.record_status(NewStatus(
                message_id=message_id, peer_node_id=signer, sender_node_id=me,
                status=status, note="", register_number=None, token=f"t.{status}.s",
                token_sha256=hashlib.sha256(status.encode()).hexdigest(),
                receipt_sha256=None, time=T2), T2)
    finally:
        store.close()
    snap = snapshot_of(office)
    sent = next(r for r in snap["recent_sent"] if r["message_id"] == sent_id)
    assert sent["document"] == {"kind": "document", "type": "resolution",
                                "number": "12-NQ/TU", "urgency": "flash",
                                "confidentiality": "secret", "subject": "Về chuyển đổi số"}
    assert sent["recipients"][0]["processing"] == "completed"   # the latest one
    got = next(r for r in snap["recent_received"] if r["message_id"] == got_id)
    assert got["document"]["number"] == "9/BC-HĐND" and got["processing"] == "assigned"
    other = next(r for r in snap["recent_received"] if r["message_id"] != got_id)
    assert other["document"] == {} and other["processing"] is None
    json.dumps(snap)
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(render_status(snap, lang="en"))
    plain = console.export_text()
    assert "Resolution · 12-NQ/TU · Flash · Secret" in plain
    assert "Về chuyển đổi số" in plain and "Completed" in plain and "Assigned" in plain
    assert "Report · 9/BC-HĐND" in plain and "[bold red]GIẢ[/bold red]" in plain
    # The clerk's default: types, urgencies, classes and statuses by their Vietnamese names.
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render_status(snap))
    vietnamese = console.export_text()
    assert "Nghị quyết · 12-NQ/TU · Hỏa tốc · Tối mật" in vietnamese
    assert "Đã hoàn thành" in vietnamese and "Đã phân công" in vietnamese
    assert "Báo cáo · 9/BC-HĐND" in vietnamese
    assert "\x1b[2J" not in console.file.getvalue()
