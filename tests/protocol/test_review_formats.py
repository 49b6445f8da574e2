"""The signed formats of the yearly review: witnesses, summaries, periods, digests, differences."""
from __future__ import annotations

import nacl.signing
import pytest

from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import SummaryError, WitnessError
from lienthong.protocol.reconciliation import (
    Item,
    compare,
    digest_side,
    issue_summary,
    month_before,
    parse_period,
    verify_summary,
)
from lienthong.protocol.witness import issue_witness, verify_witness

A = nacl.signing.SigningKey(b"a" * 32)
B = nacl.signing.SigningKey(b"b" * 32)
A_ID = node_id_from_public_key(bytes(A.verify_key))
B_ID = node_id_from_public_key(bytes(B.verify_key))
T = "2026-11-25T08:00:00Z"


def item(n: int, day: int = 3, receipt: str | None = "2026-11-03T09:00:00Z") -> Item:
    return Item(f"{n:032x}", f"{n:064x}", f"2026-11-{day:02d}T08:00:00Z", receipt)


def test_a_witness_verifies_under_the_witness_key_only_and_chains() -> None:
    """B's witness of A's head verifies with B's key, names A, and a later one names its prev."""
    first = issue_witness(B, subject=A_ID, seq=5, hash="c" * 64, head_time=T,
                          head_sha256="d" * 64, index=1, prev_sha256=None, time=T)
    info = verify_witness(first, B.verify_key, subject=A_ID)
    assert (info.subject, info.witness, info.seq, info.index) == (A_ID, B_ID, 5, 1)
    with pytest.raises(WitnessError):
        verify_witness(first, A.verify_key)
    with pytest.raises(WitnessError):
        verify_witness(first, B.verify_key, subject=B_ID)
    with pytest.raises(WitnessError):
        issue_witness(B, subject=A_ID, seq=6, hash="c" * 64, head_time=T, head_sha256="d" * 64,
                      index=2, prev_sha256=None, time=T)  # a later witness must name its prev


def test_periods_cover_whole_days_and_refuse_nonsense() -> None:
    assert (parse_period("2026-11").start, parse_period("2026-11").end) == \
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert parse_period("2026-Q4").end == "2027-01-01T00:00:00Z"
    assert parse_period("2026-02-28").end == "2026-03-01T00:00:00Z"
    assert parse_period("2026").holds("2026-12-31T23:59:59.5Z")
    assert month_before("2027-01-02T00:00:00Z") == "2026-12"
    for bad in ("2026-13", "2026-Q5", "26-11", "2026-02-30", "x"):
        with pytest.raises(SummaryError):
            parse_period(bad)


def test_a_summary_carries_roots_and_refuses_items_that_do_not_hash_to_them() -> None:
    """Roots are order-independent; a summary whose items do not match its day root fails."""
    items = [item(1), item(2, day=4), item(3)]
    side = digest_side(items)
    assert side == digest_side(reversed(items)) and side.count == 3
    token = issue_summary(A, role="answer", exchange="e" * 32, peer=B_ID, period="2026-11",
                          time=T, sent=side.carrying(items, {"2026-11-03"}),
                          received=digest_side([]))
    info = verify_summary(token, A.verify_key, peer=B_ID)
    assert {i.message_id for i in info.sent.items} == {item(1).message_id, item(3).message_id}
    forged = side.carrying([item(1), item(9)], {"2026-11-03"})
    bad = issue_summary(A, role="answer", exchange="e" * 32, peer=B_ID, period="2026-11",
                        time=T, sent=forged, received=digest_side([]))
    with pytest.raises(SummaryError, match="do not hash"):
        verify_summary(bad, A.verify_key)
    with pytest.raises(SummaryError):
        verify_summary(token, B.verify_key)


def test_compare_names_every_kind_of_difference() -> None:
    sent = [item(1), item(2, receipt=None), item(3), item(4), item(5)]
    received = [item(3), Item(item(4).message_id, "f" * 64, item(4).created, item(4).receipt_time),
                Item(item(5).message_id, item(5).sha256, item(5).created, "2026-11-04T00:00:00Z"),
                item(6)]
    kinds = {(d.kind, d.message_id) for d in compare(sent, received, sender=A_ID,
                                                     recipient=B_ID)}
    assert kinds == {("missing-at-recipient", item(1).message_id),
                     ("not-receipted", item(2).message_id),
                     ("digest-mismatch", item(4).message_id),
                     ("receipt-mismatch", item(5).message_id),
                     ("missing-at-sender", item(6).message_id)}
