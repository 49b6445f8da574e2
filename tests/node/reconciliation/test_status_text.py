"""What ``lienthong status`` says of a reconciliation that differs, from a real store: the
documents that differ and the days left uncompared (a busy period's overflow, one
``not-compared`` line per direction) are counted apart, for each asks something else of the
clerk."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong.protocol.reconciliation import Difference, tally
from tests.node.reviewhelp import warnings
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office


@pytest.fixture
def tinhuy(tmp_path: Path) -> tuple[Office, Office]:
    reactor = FakeReactor()
    tinhuy = make_office(tmp_path, "tinhuy", reactor)
    hdnd = make_office(tmp_path, "hdnd", reactor, port=7444)
    enrol(tinhuy, hdnd)
    return tinhuy, hdnd


def differs(office: Office, peer: Office, period: str, lines: list[Difference]) -> str:
    office.store.add_reconciliation(
        exchange=f"{len(period):032x}", peer_node_id=peer.node_id, period=period,
        role="initiator", state="differs", now=NOW,
        differences=json.dumps([d.as_dict() for d in lines]))
    (shown,) = [w["message"] for w in warnings(office) if w["code"] == "reconciliation-differs"]
    return str(shown)


def not_compared(days: int, sender: Office, recipient: Office) -> Difference:
    return Difference("not-compared", "-", sender.node_id, recipient.node_id,
                      f"{days} day(s) from 2026-03-13 to 2026-04-01: more documents differ "
                      "than one exchange carries (4000); reconcile those months one by one",
                      days=days)


def missing(n: int, sender: Office, recipient: Office) -> Difference:
    return Difference("missing-at-recipient", f"{n:032x}", sender.node_id, recipient.node_id,
                      "created 2026-02-01T08:00:00Z")


def test_days_not_compared_are_not_counted_as_documents(tinhuy) -> None:  # type: ignore[no-untyped-def]
    office, peer = tinhuy
    text = differs(office, peer, "2026", [not_compared(20, office, peer),
                                          not_compared(3, peer, office)])
    assert "23 day(s) not compared (reconcile those months one by one)" in text
    assert "document(s) differ" not in text


def test_documents_and_days_are_told_apart(tinhuy) -> None:  # type: ignore[no-untyped-def]
    office, peer = tinhuy
    text = differs(office, peer, "2026", [missing(1, office, peer), missing(2, office, peer),
                                          not_compared(20, office, peer)])
    assert "2 document(s) differ between the two offices' records, and 20 day(s) not " \
        "compared (reconcile those months one by one)" in text


def test_documents_only(tinhuy) -> None:  # type: ignore[no-untyped-def]
    office, peer = tinhuy
    text = differs(office, peer, "2026-11", [missing(1, office, peer)])
    assert "1 document(s) differ between the two offices' records." in text
    assert "not compared" not in text


def test_a_line_recorded_before_days_were_counted_reads_its_detail() -> None:
    line = {"kind": "not-compared", "message_id": "-", "sender": "a", "recipient": "b",
            "detail": "17 day(s) from 2026-03-13 to 2026-03-29: more documents differ"}
    assert tally([line, {"kind": "digest-mismatch"}]) == (1, 17)
