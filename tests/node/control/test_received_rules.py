"""Statuses and recalls from a peer, applied end to end on real offices: what is kept, what is
audited, what is refused and why, word for word, and what start-up applies after a crash.

Two offices with real keys, stores and folders (tests/node/runtimehelp.py): alpha sends, beta
receives; the tokens are signed with the offices' own identity keys.
"""
from __future__ import annotations

import hashlib
import types
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed

from lienthong.node.control.received import (
    MAX_CONTROL_BYTES,
    ReceivedControl,
    _read_token,
)
from lienthong.node.core.access import AccessPolicy
from lienthong.node.store.records import NewReceived
from lienthong.protocol.sealing import seal_all
from lienthong.protocol.status import issue_recall, issue_status, token_sha256
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office
from tests.node.storehelp import make_dispatch

T = "2026-11-25T09:00:00Z"
MID = f"{7:032x}"
RECEIPT = "receipt.from.beta"


def mid(n: int) -> str:
    return f"{n:032x}"


class Pair:
    def __init__(self, tmp_path: Path) -> None:
        reactor = FakeReactor()
        self.tmp = tmp_path
        self.alpha = make_office(tmp_path, "alpha", reactor)
        self.beta = make_office(tmp_path, "beta", reactor, port=7444)
        enrol(self.alpha, self.beta)
        enrol(self.beta, self.alpha)
        self.answers: list[str] = []
        self.at_alpha = ReceivedControl(self.alpha.runtime,
                                        answer=lambda: self.answers.append("alpha"))
        self.at_beta = ReceivedControl(self.beta.runtime,
                                       answer=lambda: self.answers.append("beta"))

    def notice(self, token: str, name: str = "notice.jws") -> Path:
        path = self.tmp / name
        path.write_text(token + "\n", encoding="ascii")
        return path

    # -- alpha sent MID to beta, beta receipted it ----------------------------------------
    def sent(self, receipted: bool = True, number: int = 7) -> None:
        store = self.alpha.store
        store.add_dispatch(make_dispatch(number, (self.beta.node_id,)), NOW)
        if receipted:
            store.record_receipts(self.beta.node_id, [(mid(number), RECEIPT)], NOW)

    def status(self, **change: Any) -> str:
        fields: dict[str, Any] = dict(message_id=MID, sender=self.alpha.node_id,
                                      recipient=self.beta.node_id, status="registered",
                                      time=T, receipt_sha256=token_sha256(RECEIPT),
                                      register_number="12/VT")
        fields.update(change)
        return issue_status(self.beta.runtime.keys.identity, **fields)

    def apply_status(self, token: str) -> None:
        failures: list[Any] = []
        self.at_alpha.on_status(self.beta.node_id, header(), self.notice(token)) \
            .addErrback(failures.append)
        assert failures == []

    # -- beta received MID from alpha -------------------------------------------------------
    def received(self, number: int = 7, meta: dict[str, Any] | None = None,
                 on_disk: bool = True) -> Path:
        home = self.beta.runtime.config.home
        stored = f"inbox/alpha/Quyết định {number}.pdf"
        path = home / stored
        if on_disk:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"document %d" % number)
            path.with_name(path.name + ".meta.json").write_text("{}")
        item = NewReceived(sender_node_id=self.alpha.node_id, message_id=mid(number),
                           name=path.name, stored_path=stored, size=10,
                           sha256=hashlib.sha256(b"%d" % number).hexdigest(),
                           header_token=f"h.{number}.s", meta=meta or {})
        self.beta.store.begin_publish(item, NOW)
        self.beta.store.complete_publish(self.alpha.node_id, mid(number), "our-receipt", NOW)
        return path

    def recall(self, **change: Any) -> str:
        fields: dict[str, Any] = dict(message_id=MID, sender=self.alpha.node_id,
                                      recipients=[self.beta.node_id], reason="gửi nhầm",
                                      time=T)
        fields.update(change)
        return issue_recall(self.alpha.runtime.keys.identity, **fields)

    def apply_recall(self, token: str) -> None:
        failures: list[Any] = []
        self.at_beta.on_recall(self.alpha.node_id, header(), self.notice(token, "recall.jws")) \
            .addErrback(failures.append)
        assert failures == []

    def refusals(self, office: Office) -> list[tuple[str, str, str]]:
        return [(e.detail["code"], e.detail["reason"], e.detail["control_kind"])
                for e in office.store.audit_entries(kind="security-refused")]


def header() -> Any:
    return types.SimpleNamespace(message_id="c" * 32)


# -- statuses ----------------------------------------------------------------------------------

def test_a_status_is_kept_chained_and_audited(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.sent()
    token = pair.status(note="vào sổ")
    pair.apply_status(token)
    (row,) = pair.alpha.store.statuses_for(MID)
    assert (row.peer_node_id, row.sender_node_id, row.status, row.note, row.register_number,
            row.token, row.token_sha256, row.receipt_sha256, row.time) == \
        (pair.beta.node_id, pair.alpha.node_id, "registered", "vào sổ", "12/VT", token,
         token_sha256(token), token_sha256(RECEIPT), T)
    (entry,) = pair.alpha.store.audit_entries(kind="status-received")
    assert (entry.peer, entry.message_id) == (pair.beta.node_id, MID)
    assert dict(entry.detail) == {"status": "registered", "note": "vào sổ",
                                  "register_number": "12/VT", "status_time": T,
                                  "chained": True}
    assert pair.refusals(pair.alpha) == []
    pair.apply_status(token)                                   # a resend keeps nothing new
    assert len(pair.alpha.store.statuses_for(MID)) == 1


def test_a_status_before_the_receipt_is_kept_unchained(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.sent(receipted=False)
    pair.apply_status(pair.status())
    (entry,) = pair.alpha.store.audit_entries(kind="status-received")
    assert entry.detail["chained"] is None
    assert len(pair.alpha.store.statuses_for(MID)) == 1


def test_a_recall_refused_status_without_a_receipt_is_kept(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.sent()
    pair.apply_status(pair.status(status="recall-refused", register_number=None,
                                  receipt_sha256=None, note="không có"))
    (entry,) = pair.alpha.store.audit_entries(kind="status-received")
    assert entry.detail["chained"] is None and entry.detail["register_number"] is None


def test_status_refusals_are_audited_with_their_code_and_reason(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.sent()
    pair.sent(number=8, receipted=True)
    other = "EH7DDX5-BKSRGCK-YTL7BKA-I36SE4E-NXX3KLN-K7ELKS5-YQ57PI7-4XEG4QG"
    pair.apply_status(pair.status(sender=other))
    pair.apply_status(pair.status(message_id=mid(9)))
    pair.apply_status(pair.status(receipt_sha256="0" * 64))
    pair.apply_status("x.y")
    assert pair.refusals(pair.alpha) == [
        ("status-mismatch", f"the status is about a document sent by {other}, not by this "
                            "office", "status"),
        ("status-mismatch", f"{mid(9)} is not a document this office sent to beta", "status"),
        ("status-mismatch", f"the 'registered' status of {MID} does not follow the receipt "
                            "this office gave for it", "status"),
        ("bad-status-format", "status: JWS compact serialization has exactly three parts",
         "status")]
    entries = pair.alpha.store.audit_entries(kind="security-refused")
    assert {(e.peer, e.message_id) for e in entries} == {(pair.beta.node_id, "c" * 32)}
    assert pair.alpha.store.statuses_for(MID) == []


def test_a_status_about_a_document_sent_to_another_office_is_refused(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    gamma = make_office(tmp_path, "gamma", FakeReactor(), port=7445)
    enrol(pair.alpha, gamma)
    pair.alpha.store.add_dispatch(make_dispatch(7, (gamma.node_id,)), NOW)
    pair.apply_status(pair.status())
    assert pair.refusals(pair.alpha) == [
        ("status-mismatch", f"{MID} is not a document this office sent to beta", "status")]


def test_a_notice_file_is_read_as_ascii_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "n.jws"
    path.write_bytes(b" a.b.c\n" + b" " * (MAX_CONTROL_BYTES - 7))
    assert _read_token(path) == "a.b.c"
    path.write_bytes(b"x" * (MAX_CONTROL_BYTES + 1))
    with pytest.raises(ValueError) as caught:
        _read_token(path)
    assert str(caught.value) == "n.jws is too large to be a signed notice"
    path.write_bytes(b"a.\xff.c")
    assert _read_token(path) == "a.\ufffd.c"


# -- recalls -----------------------------------------------------------------------------------

def test_a_recall_moves_the_document_keeps_the_recall_and_asks_for_an_answer(
        tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.received()
    token = pair.recall(replaced_by="d" * 32)
    pair.apply_recall(token)
    home = pair.beta.runtime.config.home
    moved = home / "recalled" / "alpha" / "Quyết định 7.pdf"
    assert moved.read_bytes() == b"document 7"
    assert not (home / "inbox" / "alpha" / "Quyết định 7.pdf").exists()
    assert moved.with_name(moved.name + ".recall.jws").read_text() == token + "\n"
    assert moved.with_name(moved.name + ".recall.txt").read_text(encoding="utf-8") == (
        "This document was recalled by alpha (thu hồi văn bản).\n"
        f"Message ID:  {MID}\n"
        f"Recalled at: {T}\n"
        "Reason:      gửi nhầm\n"
        f"Replaced by: message {'d' * 32} (văn bản thay thế)\n"
        "The signed recall is kept beside it (.recall.jws). Nothing was deleted.\n")
    (row,) = pair.beta.store.recalls_for(MID)
    assert (row.sender_node_id, row.token, row.token_sha256, row.reason, row.replaced_by,
            row.state, row.refusal, row.recalled_path, row.time) == \
        (pair.alpha.node_id, token, token_sha256(token), "gửi nhầm", "d" * 32, "accepted",
         None, "recalled/alpha/Quyết định 7.pdf", T)
    (request,) = pair.beta.store.control_requests()
    assert (request.kind, request.message_id, request.peer) == \
        ("status", MID, pair.alpha.node_id)
    assert dict(request.payload) == {"status": "recall-accepted",
                                     "note": "moved to recalled/alpha/Quyết định 7.pdf",
                                     "sender": pair.alpha.node_id,
                                     "receipt_sha256": token_sha256("our-receipt")}
    (entry,) = pair.beta.store.audit_entries(kind="recall-accepted")
    assert (entry.peer, entry.message_id) == (pair.alpha.node_id, MID)
    assert dict(entry.detail) == {"reason": "gửi nhầm", "replaced_by": "d" * 32,
                                  "refusal": None, "recalled_path": str(moved)}
    assert pair.answers == ["beta"]
    pair.apply_recall(token)                                   # a resend: already applied
    assert pair.answers == ["beta"] and len(pair.beta.store.recalls_for(MID)) == 1


def test_a_recall_waits_for_sidecars_still_to_be_written_and_moves_them_too(
        tmp_path: Path) -> None:
    """The inbox writes a document's sidecars up to a second after the document: a recall that
    comes sooner has them written first (``sidecars_written``), so they move with it and none
    is left behind in the inbox."""
    pair = Pair(tmp_path)
    path = pair.received()
    sidecars = [path.with_name(path.name + ".meta.json"),
                path.with_name(path.name + ".receipt.jws")]
    sidecars[0].unlink()                   # not written yet: waiting for their hop

    def write_waiting() -> Any:
        for sidecar in sidecars:
            sidecar.write_text("{}")
        return succeed(None)
    pair.at_beta = ReceivedControl(pair.beta.runtime, answer=lambda: None,
                                   sidecars_written=write_waiting)
    pair.apply_recall(pair.recall())
    moved = pair.beta.runtime.config.home / "recalled" / "alpha" / path.name
    assert moved.read_bytes() == b"document 7"
    for suffix in (".meta.json", ".receipt.jws"):
        assert moved.with_name(moved.name + suffix).exists(), suffix
    assert list(path.parent.iterdir()) == []


def test_a_recall_note_without_a_replacement(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.received()
    pair.apply_recall(pair.recall())
    note = (pair.beta.runtime.config.home / "recalled" / "alpha" /
            "Quyết định 7.pdf.recall.txt").read_text(encoding="utf-8")
    assert "Replaced by" not in note and note.endswith("Nothing was deleted.\n")


def test_recalls_this_office_refuses_and_why(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.apply_recall(pair.recall())                           # never received
    pair.received(number=8, meta={"kind": "status", "message_id": MID})
    pair.apply_recall(pair.recall(message_id=mid(8)))          # a notice, not a document
    rows = {r.message_id: r for m in (MID, mid(8)) for r in pair.beta.store.recalls_for(m)}
    assert (rows[MID].state, rows[MID].refusal, rows[MID].recalled_path) == \
        ("refused", f"this office has no document {MID} from you", None)
    assert (rows[mid(8)].state, rows[mid(8)].refusal) == \
        ("refused", f"{mid(8)} is a status notice, not a document")
    payloads = [dict(r.payload) for r in pair.beta.store.control_requests()]
    assert payloads[0] == {"status": "recall-refused",
                           "note": f"this office has no document {MID} from you",
                           "sender": pair.alpha.node_id, "receipt_sha256": None}
    assert payloads[1]["status"] == "recall-refused"
    assert payloads[1]["receipt_sha256"] == token_sha256("our-receipt")
    assert [e.detail["refusal"] for e in pair.beta.store.audit_entries(kind="recall-refused")] \
        == [f"this office has no document {MID} from you",
            f"{mid(8)} is a status notice, not a document"]
    assert pair.answers == ["beta", "beta"]


def test_a_second_recall_of_a_recalled_document_is_refused(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.received()
    pair.apply_recall(pair.recall())
    pair.apply_recall(pair.recall(reason="lần hai"))
    first, second = pair.beta.store.recalls_for(MID)
    assert first.state == "accepted"
    assert (second.state, second.refusal) == ("refused", "this document was already recalled")


def test_a_recall_of_a_document_no_longer_in_the_inbox_is_recorded(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.received(on_disk=False)
    pair.apply_recall(pair.recall())
    (row,) = pair.beta.store.recalls_for(MID)
    assert (row.state, row.refusal, row.recalled_path) == ("accepted", None, None)
    (request,) = pair.beta.store.control_requests()
    assert request.payload["note"] == \
        "the document had already left the inbox; the recall is recorded"


def test_recall_refusals_are_audited_with_their_code_and_reason(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.received()
    gamma = make_office(tmp_path, "gamma", FakeReactor(), port=7445)
    pair.apply_recall(pair.recall(recipients=[gamma.node_id]))
    pair.apply_recall("x.y")
    assert pair.refusals(pair.beta) == [
        ("recall-mismatch", "this office is not among the recall's recipients", "recall"),
        ("bad-recall-format", "recall: JWS compact serialization has exactly three parts",
         "recall")]
    assert pair.beta.store.recalls_for(MID) == [] and pair.answers == []


# -- start-up ----------------------------------------------------------------------------------

def test_start_up_applies_the_notices_a_crash_left_unapplied(tmp_path: Path) -> None:
    """A status and a recall stored and receipted, but never applied, are applied by recover."""
    pair = Pair(tmp_path)
    pair.sent()
    pair.received(number=3)
    beta, alpha = pair.beta.runtime, pair.alpha.runtime

    def store_notice(office: Office, sender: Any, token: str, kind: str, number: int) -> None:
        sealed, _ = seal_all(
            token.encode("ascii"), identity=sender.keys.identity, sender=sender.node_id,
            sender_key=(sender.keys.current_encryption.kid,
                        sender.keys.current_encryption.private.public_key),
            recipients={office.node_id: (office.runtime.keys.current_encryption.kid,
                                         office.runtime.keys.current_encryption.private
                                         .public_key)},
            name=f"{kind}.jws", message_id=mid(number), created=NOW)
        stored = f"inbox/{kind}-{number}.jws"
        (office.runtime.config.home / stored).parent.mkdir(parents=True, exist_ok=True)
        (office.runtime.config.home / stored).write_text(token + "\n", encoding="ascii")
        office.store.begin_publish(NewReceived(
            sender_node_id=sender.node_id, message_id=mid(number), name=f"{kind}.jws",
            stored_path=stored, size=len(token), sha256=token_sha256(token),
            header_token=sealed.header_token,
            meta={"kind": kind, "message_id": MID}), NOW)
        office.store.complete_publish(sender.node_id, mid(number), "r", NOW)

    status = pair.status()
    store_notice(pair.alpha, beta, status, "status", 20)
    recall = pair.recall(message_id=mid(3))
    store_notice(pair.beta, alpha, recall, "recall", 21)
    failures: list[Any] = []
    pair.at_alpha.recover().addErrback(failures.append)
    pair.at_beta.recover().addErrback(failures.append)
    assert failures == []
    assert [r.token for r in pair.alpha.store.statuses_for(MID)] == [status]
    assert [r.token for r in pair.beta.store.recalls_for(mid(3))] == [recall]
    assert pair.alpha.store.unapplied_control("status") == []
    assert pair.beta.store.unapplied_control("recall") == []


# -- found by mutation testing -----------------------------------------------------------------

def test_an_office_s_ids_are_its_current_and_former_identities() -> None:
    from lienthong.node.control.received import _office_ids
    keys = {"NEW": (types.SimpleNamespace(kid="OLD"), types.SimpleNamespace(kid="NEW"))}
    rt: Any = types.SimpleNamespace(directory=types.SimpleNamespace(
        identities_of=lambda node_id: keys.get(node_id, ())))
    assert _office_ids(rt, "NEW") == {"NEW", "OLD"}
    assert _office_ids(rt, "OTHER") == {"OTHER"}


def test_a_notice_is_read_as_ascii_whatever_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "n.jws"
    path.write_bytes("a.é.c".encode())
    assert _read_token(path) == "a.\ufffd\ufffd.c"


def test_a_huge_notice_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    import tracemalloc
    path = tmp_path / "huge.jws"
    with open(path, "wb") as handle:
        handle.truncate(32 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            _read_token(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def _row(tmp_path: Path, name: str = "cv.pdf") -> Any:
    from lienthong.node.store.records import ReceivedRow
    inbox = tmp_path / "inbox" / "alpha"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text("document")
    return ReceivedRow("SENDER", MID, name, f"inbox/alpha/{name}", 8, "0" * 64, "h", "stored",
                       "r", NOW, {})


def test_a_recalled_file_of_the_same_name_is_never_overwritten(tmp_path: Path) -> None:
    from lienthong.node.control.received import recall_files
    folder = tmp_path / "recalled" / "alpha"
    folder.mkdir(parents=True)
    (folder / "cv.pdf").write_text("put here by a clerk")          # no sidecars beside it
    target = recall_files(tmp_path, _row(tmp_path), "tok.en.sig", "note", AccessPolicy())
    assert target == folder / "cv (2).pdf" and target.read_text() == "document"
    assert (folder / "cv.pdf").read_text() == "put here by a clerk"


def test_stray_files_in_the_recalled_folder_do_not_stop_a_recall(tmp_path: Path) -> None:
    from lienthong.node.control.received import recall_files
    folder = tmp_path / "recalled" / "alpha"
    folder.mkdir(parents=True)
    (folder / "other.recall.jws").write_bytes(b"\xff\xfe not a token")
    target = recall_files(tmp_path, _row(tmp_path), "tok.en.sig", "Lý do\n", AccessPolicy())
    assert target == folder / "cv.pdf"
    assert (folder / "cv.pdf.recall.txt").read_bytes() == "Lý do\n".encode()


def test_a_recalled_document_removed_since_is_not_reported_as_moved(tmp_path: Path) -> None:
    from lienthong.node.control.received import recall_files
    row = _row(tmp_path)
    target = recall_files(tmp_path, row, "tok.en.sig", "note", AccessPolicy())
    assert target is not None
    target.unlink()                                              # a clerk deleted it since
    assert recall_files(tmp_path, row, "tok.en.sig", "note", AccessPolicy()) is None
