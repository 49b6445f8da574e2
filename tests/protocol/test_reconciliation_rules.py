"""Reconciliation summaries: periods, digests, differences and every refusal word for word.

A refused summary is recorded with the message raised here and shown in `review` and the
reconciliation report (docs/review.md), so the texts are pinned; the digests are pinned by
computing them independently from the rule docs/review.md states.
"""
from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing
import pytest

from lienthong.keys import jws
from lienthong.keys.nodeid import node_id_from_public_key
from lienthong.protocol.errors import SummaryError
from lienthong.protocol.reconciliation import (
    MAX_COUNT,
    MAX_ITEMS,
    SUMMARY_TYP,
    Difference,
    Item,
    Period,
    Side,
    SummaryInfo,
    carried_days,
    compare,
    decode_summary,
    digest_side,
    issue_summary,
    listed,
    month_before,
    parse_period,
    verify_summary,
)

A = nacl.signing.SigningKey(b"A" * 32)
B = nacl.signing.SigningKey(b"B" * 32)
A_ID = node_id_from_public_key(bytes(A.verify_key))
B_ID = node_id_from_public_key(bytes(B.verify_key))
T = "2026-12-01T08:00:00Z"
EX = "e" * 32
DROP = object()


def item(n: int, day: int = 3, receipt: str | None = "2026-11-03T09:00:00Z") -> Item:
    return Item(f"{n:032x}", f"{n:064x}", f"2026-11-{day:02d}T08:00:00Z", receipt)


def sha_lines(lines: list[str]) -> str:
    return hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()


def refusal(call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(SummaryError) as caught:
        call(*args, **kw)
    return str(caught.value)


# -- periods -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("label", "kind", "start", "end"), [
    ("2026", "year", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2026-Q1", "quarter", "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"),
    ("2026-Q2", "quarter", "2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z"),
    ("2026-Q3", "quarter", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"),
    ("2026-Q4", "quarter", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2026-01", "month", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
    ("2026-11", "month", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("2026-12", "month", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2026-11-03", "day", "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"),
    ("2026-12-31", "day", "2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2028-02-29", "day", "2028-02-29T00:00:00Z", "2028-03-01T00:00:00Z"),
    ("2000", "year", "2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
    ("9998", "year", "9998-01-01T00:00:00Z", "9999-01-01T00:00:00Z"),
])
def test_each_kind_of_period(label: str, kind: str, start: str, end: str) -> None:
    assert parse_period(label) == Period(label=label, kind=kind, start=start, end=end)


def test_period_refusals_are_worded() -> None:
    shape = "is not a year (2026), quarter (2026-Q4), month (2026-11) or day (2026-11-03)"
    for text in ("26", "2026-Q5", "2026-1", "2026-11-3", "x", 2026, None):
        assert refusal(parse_period, text) == f"period {text!r} {shape}"
    for text in ("1999", "9999", "1999-12"):
        assert refusal(parse_period, text) == f"period {text!r} names an implausible year"
    assert refusal(parse_period, "2026-13") == \
        "period '2026-13' is not a real date: month must be in 1..12"
    assert refusal(parse_period, "2026-02-29") == \
        "period '2026-02-29' is not a real date: day is out of range for month"
    assert refusal(parse_period, "2026-00-01").startswith("period '2026-00-01' is not a real date")


def test_a_period_holds_its_start_and_not_its_end() -> None:
    month = parse_period("2026-11")
    assert month.holds("2026-11-01T00:00:00Z")
    assert month.holds("2026-11-30T23:59:59.999999Z")
    assert not month.holds("2026-12-01T00:00:00Z")
    assert not month.holds("2026-10-31T23:59:59.5Z")


def test_the_month_before() -> None:
    assert month_before("2027-01-02T00:00:00Z") == "2026-12"
    assert month_before("2026-11-05T10:00:00Z") == "2026-10"
    assert month_before("2026-10-01T00:00:00Z") == "2026-09"
    assert month_before("2026-02-28T00:00:00Z") == "2026-01"


# -- items and digests -------------------------------------------------------------------------

def test_an_item_s_day_line_and_list() -> None:
    it = item(1)
    assert it.day == "2026-11-03"
    assert it.line == f"{1:032x} {1:064x} 2026-11-03T08:00:00Z 2026-11-03T09:00:00Z"
    assert item(1, receipt=None).line == f"{1:032x} {1:064x} 2026-11-03T08:00:00Z -"
    assert it.as_list() == [f"{1:032x}", f"{1:064x}", "2026-11-03T08:00:00Z",
                            "2026-11-03T09:00:00Z"]


def test_digest_side_is_the_two_level_tree_of_docs_review() -> None:
    items = [item(2), item(1), item(3, day=4)]
    side = digest_side(items)
    day3 = sha_lines([item(1).line, item(2).line])
    day4 = sha_lines([item(3, day=4).line])
    assert side.days == {"2026-11-03": (2, day3), "2026-11-04": (1, day4)}
    assert side.root == sha_lines([f"2026-11-03 2 {day3}", f"2026-11-04 1 {day4}"])
    assert (side.count, side.items) == (3, ())
    empty = digest_side([])
    assert (empty.count, empty.root, dict(empty.days)) == (0, hashlib.sha256(b"").hexdigest(), {})
    assert digest_side(iter(items)) == side                   # any iterable, read once


def test_side_as_dict_sorts_and_carrying_filters() -> None:
    items = [item(3, day=4), item(2), item(1)]
    side = digest_side(items)
    carried = side.carrying(items, {"2026-11-03"})
    assert carried.items == (item(1), item(2))
    assert (carried.count, carried.root, carried.days) == (side.count, side.root, side.days)
    data = carried.as_dict()
    assert list(data) == ["count", "root", "days", "items"]
    assert list(data["days"]) == ["2026-11-03", "2026-11-04"]
    assert data["days"]["2026-11-03"] == [2, side.days["2026-11-03"][1]]
    assert data["items"] == [item(1).as_list(), item(2).as_list()]


def test_differing_days() -> None:
    mine = digest_side([item(1), item(2, day=4), item(3, day=5)])
    theirs = digest_side([item(1), item(9, day=4), item(6, day=6)])
    assert mine.differing_days(theirs) == {"2026-11-04", "2026-11-05", "2026-11-06"}
    assert mine.differing_days(mine) == set()
    same_root_other_count = Side(1, "r", {"2026-11-03": (2, "x")})
    assert same_root_other_count.differing_days(Side(1, "r", {"2026-11-03": (1, "x")})) == \
        {"2026-11-03"}


def test_carried_days_fills_to_the_limit_exactly() -> None:
    side = digest_side([item(1, day=3), item(2, day=3), item(3, day=4), item(4, day=5)])
    # Sent day 3 (2 items) and received day 3 (2 items) make exactly the limit of 4.
    out, into = carried_days(side, {"2026-11-03", "2026-11-05"}, side, {"2026-11-03"}, limit=4)
    assert (out, into) == ({"2026-11-03"}, {"2026-11-03"})
    out, into = carried_days(side, {"2026-11-03", "2026-11-05"}, side, {"2026-11-03"}, limit=3)
    assert (out, into) == ({"2026-11-03", "2026-11-05"}, set())   # sent first on a day
    out, into = carried_days(side, {"2026-11-04"}, side, {"2026-11-05"}, limit=1)
    assert (out, into) == ({"2026-11-04"}, set())                # earliest first
    out, into = carried_days(side, {"2026-11-09"}, digest_side([]), {"2026-11-09"}, limit=0)
    assert (out, into) == ({"2026-11-09"}, {"2026-11-09"})       # nothing held costs nothing
    assert carried_days(side, {"2026-11-03"}, side, set()) == ({"2026-11-03"}, set())


def test_listed() -> None:
    items = [item(1, day=3), item(2, day=4)]
    side = digest_side(items)
    carrying = side.carrying(items, {"2026-11-03"})
    assert listed(carrying, "2026-11-03")
    assert not listed(carrying, "2026-11-04")
    assert listed(carrying, "2026-11-09")                        # nothing held that day


# -- differences -------------------------------------------------------------------------------

def test_each_difference_is_described() -> None:
    sent = [item(1), item(2, receipt=None), item(4), item(5), item(7), item(8, receipt=None)]
    received = [Item(item(4).message_id, "f" * 64, item(4).created, item(4).receipt_time),
                Item(item(5).message_id, item(5).sha256, item(5).created,
                     "2026-11-04T00:00:00Z"),
                item(6), item(7), item(8)]
    got = compare(sent, received, sender=A_ID, recipient=B_ID)
    assert got == [
        Difference("missing-at-recipient", item(1).message_id, A_ID, B_ID,
                   "created 2026-11-03T08:00:00Z"),
        Difference("not-receipted", item(2).message_id, A_ID, B_ID,
                   "created 2026-11-03T08:00:00Z"),
        Difference("digest-mismatch", item(4).message_id, A_ID, B_ID,
                   f"sender {item(4).sha256[:16]}..., recipient {'f' * 16}..."),
        Difference("receipt-mismatch", item(5).message_id, A_ID, B_ID,
                   "sender 2026-11-03T09:00:00Z, recipient 2026-11-04T00:00:00Z"),
        Difference("missing-at-sender", item(6).message_id, A_ID, B_ID,
                   "receipted 2026-11-03T09:00:00Z"),
        Difference("missing-at-sender", item(8).message_id, A_ID, B_ID,
                   "receipted 2026-11-03T09:00:00Z"),
    ]
    assert got[0].as_dict() == {"kind": "missing-at-recipient", "message_id": item(1).message_id,
                                "sender": A_ID, "recipient": B_ID,
                                "detail": "created 2026-11-03T08:00:00Z"}
    assert compare([], [], sender=A_ID, recipient=B_ID) == []


# -- issuing -----------------------------------------------------------------------------------

def summary(**change: Any) -> str:
    fields: dict[str, Any] = dict(role="answer", exchange=EX, peer=B_ID, period="2026-11",
                                  time=T, sent=digest_side([item(1)]), received=digest_side([]))
    fields.update(change)
    return issue_summary(A, **fields)


def test_an_issued_summary_carries_every_field() -> None:
    sent = digest_side([item(1), item(2, day=4)])
    token = summary(role="detail", sent=sent.carrying([item(1)], {"2026-11-03"}))
    decoded = jws.decode(token, SUMMARY_TYP)
    assert decoded.kid == A_ID
    assert decoded.payload == {
        "v": 1, "role": "detail", "exchange": EX, "office": A_ID, "peer": B_ID,
        "period": "2026-11", "time": T, "sent": sent.carrying([item(1)], {"2026-11-03"}).as_dict(),
        "received": digest_side([]).as_dict()}
    info = verify_summary(token.encode("ascii"), A.verify_key, peer=B_ID)
    assert info == SummaryInfo(role="detail", exchange=EX, office=A_ID, peer=B_ID,
                               period=parse_period("2026-11"), time=T,
                               sent=Side(sent.count, sent.root, sent.days, (item(1),)),
                               received=digest_side([]), token=token)
    assert verify_summary(token, A.verify_key, peer=None) == info
    assert decode_summary(token) == info
    for role in ("request", "answer"):
        assert verify_summary(summary(role=role), A.verify_key).role == role


def test_issue_refusals() -> None:
    assert refusal(summary, role="reply") == "unknown role 'reply'"
    assert refusal(summary, exchange="E" * 32) == "exchange must be 32 lowercase hex digits"
    assert refusal(summary, peer="nobody").startswith("peer: ")
    assert refusal(summary, period="2026-13").startswith("period '2026-13' is not a real date")
    assert refusal(summary, time="2026-12-01").startswith("time must be RFC 3339 UTC text")


# -- parsing -----------------------------------------------------------------------------------

def payload(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": 1, "role": "answer", "exchange": EX, "office": A_ID,
                              "peer": B_ID, "period": "2026-11", "time": T,
                              "sent": digest_side([item(1)]).as_dict(),
                              "received": digest_side([]).as_dict()}
    fields.update(change)
    return {key: value for key, value in fields.items() if value is not DROP}


def forged(key: nacl.signing.SigningKey = A, kid: str = A_ID, **change: Any) -> str:
    return jws.sign(key, SUMMARY_TYP, payload(**change), kid=kid)


def parse_refusal(**change: Any) -> str:
    return refusal(verify_summary, forged(**change), A.verify_key)


def side(**change: Any) -> dict[str, Any]:
    base = digest_side([item(1), item(2, day=4)]).as_dict()
    base.update(change)
    return {key: value for key, value in base.items() if value is not DROP}


def test_header_level_refusals() -> None:
    for version in (2, True, "1"):
        assert parse_refusal(v=version) == \
            f"unsupported summary version {version!r}; this node reads v1"
    assert parse_refusal(v=DROP) == "unsupported summary version None; this node reads v1"
    assert parse_refusal(extra=1) == "summary fields wrong: missing [], unknown ['extra']"
    assert parse_refusal(time=DROP) == "summary fields wrong: missing ['time'], unknown []"
    assert parse_refusal(office="x").startswith("office: ")
    assert parse_refusal(kid=B_ID) == "the summary's kid must be the signing office's node ID"
    assert parse_refusal(role="reply") == "unknown role 'reply'"
    assert parse_refusal(period="2026-Q9").startswith("period '2026-Q9' is not a year")
    for what in ("sent", "received"):
        assert parse_refusal(**{what: [1]}) == f"{what} must be an object with a list of items"
        assert parse_refusal(**{what: side(items={})}) == \
            f"{what} must be an object with a list of items"
    assert parse_refusal(exchange="x") == "exchange must be 32 lowercase hex digits"
    assert parse_refusal(peer="x").startswith("peer: ")
    assert parse_refusal(time="x").startswith("time must be RFC 3339 UTC text")


def test_the_item_limit_is_counted_over_both_sides() -> None:
    junk = [[]] * (MAX_ITEMS // 2)
    over = parse_refusal(sent=side(items=junk), received=side(items=[*junk, []]))
    assert over == f"the summary carries more than {MAX_ITEMS} items"
    at = parse_refusal(sent=side(items=junk), received=side(items=junk))
    assert at != over                                 # 4,000 pass the limit (then fail later)


def test_side_refusals_are_worded() -> None:
    keys = "['count', 'days', 'items', 'root']"
    assert parse_refusal(sent=side(extra=1)) == f"sent must have exactly {keys}"
    assert parse_refusal(received=side(root=DROP)) == f"received must have exactly {keys}"
    for count in (-1, True, MAX_COUNT + 1, 2.0):
        assert parse_refusal(sent=side(count=count)) == \
            f"sent.count must be a whole number from 0 to {MAX_COUNT}"
    assert parse_refusal(sent=side(root="R" * 64)) == "sent.root must be 64 lowercase hex digits"
    limits = "sent.days must be an object and sent.items a list of at most sent.count items"
    assert parse_refusal(sent=side(days=[])) == limits
    assert parse_refusal(sent=side(items=[item(1).as_list()] * 3)) == limits
    two = digest_side([item(1), item(2, day=4)])
    assert parse_refusal(sent=side(days={"2026-12-01": [2, two.root]})) == \
        "sent.days names '2026-12-01', outside period 2026-11"
    assert parse_refusal(sent=side(days={"2026-11-1": [2, two.root]})) == \
        "sent.days names '2026-11-1', outside period 2026-11"
    for pair in ([2], [2, two.root, 1], [0, two.root], [True, two.root], "x", [-1, two.root]):
        assert parse_refusal(sent=side(days={"2026-11-03": pair})) == \
            "sent.days[2026-11-03] must be [count, root]"
    assert parse_refusal(sent=side(days={"2026-11-03": [2, "x"]})) == \
        "sent.days[2026-11-03] must be 64 lowercase hex digits"
    assert parse_refusal(sent=side(count=3)) == "sent.count is not the sum of its days"
    assert parse_refusal(sent=side(root="0" * 64)) == "sent.root is not the digest of its days"


def test_the_largest_count_is_accepted() -> None:
    day_root = "0" * 64
    root = sha_lines([f"2026-11-03 {MAX_COUNT} {day_root}"])
    big = {"count": MAX_COUNT, "root": root, "days": {"2026-11-03": [MAX_COUNT, day_root]},
           "items": []}
    assert verify_summary(forged(sent=big), A.verify_key).sent.count == MAX_COUNT


def test_item_refusals_are_worded() -> None:
    def with_item(raw: Any) -> str:
        return parse_refusal(sent=side(items=[raw]))

    shape = "an item is [message_id, sha256, created, receipt_time]"
    assert with_item(item(1).as_list()[:3]) == shape
    assert with_item({"a": 1}) == shape
    good = item(1).as_list()
    assert with_item(["x", *good[1:]]) == "item message_id must be 32 lowercase hex digits"
    assert with_item([good[0], "x", *good[2:]]) == "item sha256 must be 64 lowercase hex digits"
    assert with_item([*good[:2], "x", good[3]]).startswith("item created must be RFC 3339")
    assert with_item([*good[:3], "x"]).startswith("item receipt must be RFC 3339")
    assert with_item([*good[:3], None]) == "sent.items of 2026-11-03 do not hash to that day's root"
    carried = side(items=[good])
    assert verify_summary(forged(sent=carried), A.verify_key).sent.items == (item(1),)


def test_signature_signer_and_addressee() -> None:
    token = summary()
    assert refusal(verify_summary, token, B.verify_key) == \
        "the summary's signature does not verify"
    assert refusal(verify_summary, forged(key=B), B.verify_key) == \
        f"the key that signed the summary is not the identity of {A_ID}"
    assert refusal(verify_summary, token, A.verify_key, peer=A_ID) == \
        f"the summary is addressed to {B_ID}, not {A_ID}"
    message = refusal(verify_summary, jws.sign(A, "lienthong-status/1", {}, kid=A_ID),
                      A.verify_key)
    assert message.startswith("not a reconciliation summary: expected a "
                              f"'{SUMMARY_TYP}' object")
    assert refusal(decode_summary, "a.b") == \
        "not a reconciliation summary: JWS compact serialization has exactly three parts"
    assert decode_summary(forged(key=B)).office == A_ID       # display only: no signature


def test_a_fraction_of_a_second_past_the_end_is_outside() -> None:
    assert not parse_period("2026-11").holds("2026-12-01T00:00:00.5Z")
    assert parse_period("2026-11").holds("2026-11-01T00:00:00.5Z")


def test_periods_are_utc_whatever_the_machine_s_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        assert parse_period("2026-11-03") == Period("2026-11-03", "day",
                                                     "2026-11-03T00:00:00Z",
                                                     "2026-11-04T00:00:00Z")
        assert parse_period("2026-12-31").end == "2027-01-01T00:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()
