"""Statuses and recalls from peers (node/control/received.py): the recall move of a received
document and its sidecars, the stored notices start-up must still apply, and notices that do
not verify (refused, and the refusal audited with the kind of notice, on an inline runtime)."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from lienthong.node.control.received import ReceivedControl, recall_files
from lienthong.node.core.access import AccessPolicy
from lienthong.node.store.database import Store
from lienthong.node.store.records import NewStatus, ReceivedRow
from lienthong.protocol.fields import new_message_id
from tests.node.runtimehelp import FakeReactor, enrol, make_office
from tests.node.storehelp import T0, T1, make_peer, make_received

MID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("notice", ["status", "recall"])
def test_a_notice_that_does_not_verify_is_refused_and_audited(tmp_path: Path,
                                                              notice: str) -> None:
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    enrol(alpha, beta)
    answered: list[bool] = []
    received = ReceivedControl(alpha.runtime, answer=lambda: answered.append(True))
    stored = tmp_path / f"{notice}.jws"
    stored.write_text("not.a.token\n", encoding="ascii")
    header = types.SimpleNamespace(message_id=new_message_id())
    apply = received.on_status if notice == "status" else received.on_recall

    outcome = apply(beta.node_id, header, stored)

    failures: list[object] = []
    outcome.addErrback(failures.append)
    assert failures == []
    (entry,) = alpha.store.audit_entries(kind="security-refused")
    assert (entry.peer, entry.message_id) == (beta.node_id, header.message_id)
    assert entry.detail["control_kind"] == notice
    assert answered == []


def _received(tmp_path: Path, name: str = "cv.pdf") -> ReceivedRow:
    inbox = tmp_path / "inbox" / "alpha"
    inbox.mkdir(parents=True, exist_ok=True)
    for suffix, text in (("", "document"), (".meta.json", "{}"), (".receipt.jws", "r")):
        (inbox / (name + suffix)).write_text(text)
    return ReceivedRow("SENDER", MID, name, f"inbox/alpha/{name}", 8, "0" * 64, "h", "stored",
                       "r", T0, {})


def test_recall_moves_document_and_sidecars_aside_idempotently(tmp_path: Path) -> None:
    """Everything moves to recalled/alpha/ beside the signed recall; a rerun finds it; a clash
    with an earlier recalled file of the same name gets a suffix; nothing is deleted."""
    row = _received(tmp_path)
    target = recall_files(tmp_path, row, "tok.en.sig", "Lý do: nhầm\n", AccessPolicy())
    folder = tmp_path / "recalled" / "alpha"
    assert target == folder / "cv.pdf" and target.read_text() == "document"
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        "cv.pdf", "cv.pdf.meta.json", "cv.pdf.receipt.jws", "cv.pdf.recall.jws",
        "cv.pdf.recall.txt"])
    assert list((tmp_path / "inbox" / "alpha").iterdir()) == []
    assert recall_files(tmp_path, row, "tok.en.sig", "again", AccessPolicy()) == target
    second = recall_files(tmp_path, _received(tmp_path), "other.tok.sig", "x", AccessPolicy())
    assert second == folder / "cv (2).pdf" and second.read_text() == "document"
    assert recall_files(tmp_path, row, "third.tok.sig", "x", AccessPolicy()) is None


def test_unapplied_control_lists_stored_notices_not_yet_recorded(store: Store) -> None:
    """A stored status notice whose token (its SHA-256) was never kept is found at start-up."""
    sender = make_peer("alpha", 1).node_id
    notice = make_received(7, sender)
    notice = type(notice)(**{**{f: getattr(notice, f) for f in notice.__dataclass_fields__},
                             "meta": {"kind": "status", "message_id": MID}})
    store.begin_publish(notice, T0)
    store.complete_publish(sender, notice.message_id, "receipt", T0)
    assert [r.message_id for r in store.unapplied_control("status")] == [notice.message_id]
    assert store.unapplied_control("recall") == []
    store.record_status(NewStatus(MID, "P", "ME", "completed", "", None, "t",
                                  notice.sha256, "a" * 64, T1), T1)
    assert store.unapplied_control("status") == []
