"""The signed formats of the yearly review: witnesses, summaries, periods, digests, differences."""
from __future__ import annotations

from datetime import datetime, timedelta

import nacl.signing
import pytest

from lienthong.keys.jws import MAX_TOKEN_BYTES
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import SummaryError, WitnessError
from lienthong.protocol.reconciliation import (
    MAX_ITEMS,
    Item,
    carried_days,
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


def busy_year(per_day: int = 100, days: int = 365) -> list[Item]:
    """A document every few minutes of every day of 2026, each receipted a second later."""
    first = datetime.strptime(parse_period("2026").start, "%Y-%m-%dT%H:%M:%SZ")
    out = []
    for d in range(days):
        day = (first + timedelta(days=d)).strftime("%Y-%m-%d")
        for k in range(per_day):
            n = d * per_day + k
            out.append(Item(f"{n:032x}", f"{n:064x}", f"{day}T{k // 60:02d}:{k % 60:02d}:00Z",
                            f"{day}T{k // 60:02d}:{k % 60:02d}:01.250Z"))
    return out


def test_a_year_of_a_busy_pair_is_summarised_by_roots_whatever_its_size() -> None:
    """36,500 documents each way in a year (over the old 20,000 cap): the request, roots
    only, verifies and stays small."""
    items = busy_year()
    side = digest_side(items)
    token = issue_summary(A, role="request", exchange="e" * 32, peer=B_ID, period="2026",
                          time=T, sent=side, received=side)
    info = verify_summary(token, A.verify_key, peer=B_ID)
    assert info.sent.count == 36500 and len(info.sent.days) == 365
    assert len(token) < 100 * 1024


def test_a_summary_carries_at_most_max_items_and_stays_under_a_token_s_size() -> None:
    """At the cap (4,000 items, a whole year of day roots on both sides) the signed answer
    verifies and fits in a token; one item more is refused."""
    items = busy_year()
    side = digest_side(items)
    out, into = carried_days(side, set(side.days), side, set(side.days))
    assert sum(side.days[d][0] for d in out) + sum(side.days[d][0] for d in into) == MAX_ITEMS
    token = issue_summary(A, role="answer", exchange="e" * 32, peer=B_ID, period="2026",
                          time=T, sent=side.carrying(items, out),
                          received=side.carrying(items, into))
    assert len(token) < MAX_TOKEN_BYTES
    info = verify_summary(token, A.verify_key)
    assert len(info.sent.items) + len(info.received.items) == MAX_ITEMS
    # The same days, with one document more on the first of them: 4,001 items.
    first = min(out)
    more = [*items, Item("f" * 32, "f" * 64, f"{first}T23:59:00Z", None)]
    over = issue_summary(A, role="answer", exchange="e" * 32, peer=B_ID, period="2026", time=T,
                         sent=digest_side(more).carrying(more, out),
                         received=side.carrying(items, into))
    with pytest.raises(SummaryError, match=f"more than {MAX_ITEMS} items"):
        verify_summary(over, A.verify_key)


def test_carried_days_takes_whole_days_earliest_first_within_the_limit() -> None:
    items = [item(1, day=3), item(2, day=3), item(3, day=4), item(4, day=5), item(5, day=5),
             item(6, day=5)]
    side = digest_side(items)
    # Day 3 (2) fits, day 4 (1) fits, day 5 (3) would make 6 > 4: left for a smaller day.
    out, into = carried_days(side, {"2026-11-03", "2026-11-04", "2026-11-05"}, digest_side([]),
                             {"2026-11-06"}, limit=4)
    assert out == {"2026-11-03", "2026-11-04"} and into == {"2026-11-06"}  # nothing held: free
