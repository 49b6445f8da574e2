"""A year between a busy pair: 36,500 documents each way, and hdnd's record of 60 days of
what it received lost. The exchange runs between two reconcilers on real stores and real keys;
only the offices' document records are synthetic (``own_items`` reads them from the store, and
36,500 real envelopes would test the store, not the exchange). Every summary stays under a
token's size; the 4,000 documents that fit are named on both sides, and the days that did not
fit are reported as not compared, on both sides alike."""
from __future__ import annotations

import json
import types
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed

from lienthong.keys.jws import MAX_TOKEN_BYTES
from lienthong.node.reconciliation import exchange
from lienthong.node.reconciliation.exchange import Reconciler, request_reconciliation
from lienthong.protocol.fields import new_message_id
from lienthong.protocol.reconciliation import MAX_ITEMS, Item, Period
from tests.node.reviewhelp import warnings
from tests.node.runtimehelp import NOW, FakeReactor, enrol, make_office

PER_DAY = 100
LOST = 60  # days, from 1 February


def year() -> list[Item]:
    first = datetime(2026, 1, 1)
    out = []
    for d in range(365):
        day = (first + timedelta(days=d)).strftime("%Y-%m-%d")
        for k in range(PER_DAY):
            n = d * PER_DAY + k
            out.append(Item(f"{n:032x}", f"{n:064x}", f"{day}T08:{k // 60:02d}:{k % 60:02d}Z",
                            f"{day}T09:{k // 60:02d}:{k % 60:02d}.500Z"))
    return out


class Relay:
    """Carries each summary a reconciler sends to the other one's receiving handler, after
    the send (as the network does: a summary is handled after its sender has moved on)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.to: dict[str, Reconciler] = {}
        self.sizes: list[int] = []
        self.queued: list[tuple[str, str, Any, Path]] = []

    def deliver(self) -> None:
        """Hand over what was sent, and what that sends in turn, until nothing is left."""
        while self.queued:
            target, me, header, path = self.queued.pop(0)
            self.to[target].on_summary(me, header, path)

    def sender(self, me: str) -> Any:
        relay = self

        class Sender:
            def send_control(self, recipients: list[str], *, name: str, data: bytes,
                             meta: dict[str, Any]) -> Any:
                relay.sizes.append(len(data))
                path = relay.tmp_path / f"{new_message_id()}.jws"
                path.write_bytes(data)
                (target,) = recipients
                header = types.SimpleNamespace(message_id=new_message_id())
                relay.queued.append((target, me, header, path))
                return succeed("0" * 32)

        return Sender()


def test_a_busy_year_with_a_lost_quarter_is_reconciled_within_a_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reactor = FakeReactor()
    tinhuy = make_office(tmp_path, "tinhuy", reactor)
    hdnd = make_office(tmp_path, "hdnd", reactor, port=7444)
    enrol(tinhuy, hdnd)
    enrol(hdnd, tinhuy)
    documents = year()
    lost_days = {(datetime(2026, 2, 1) + timedelta(days=d)).strftime("%Y-%m-%d")
                 for d in range(LOST)}
    records = {tinhuy.node_id: (documents, []),  # tinhuy sent them all, and got receipts
               hdnd.node_id: ([], [i for i in documents if i.day not in lost_days])}

    def own_items(store: Any, peer_ids: Iterable[str], period: Period,
                  keys: Any) -> tuple[list[Item], list[Item]]:
        office = tinhuy if store is tinhuy.store else hdnd
        return records[office.node_id]

    monkeypatch.setattr(exchange, "own_items", own_items)
    relay = Relay(tmp_path)
    asker = Reconciler(tinhuy.runtime, relay.sender(tinhuy.node_id), retry=3600, monthly=False)
    answerer = Reconciler(hdnd.runtime, relay.sender(hdnd.node_id), retry=3600, monthly=False)
    relay.to = {hdnd.node_id: answerer, tinhuy.node_id: asker}

    request_reconciliation(tinhuy.store, hdnd.node_id, "2026", NOW)
    asker.poll()
    relay.deliver()

    assert len(relay.sizes) == 3, relay.sizes  # request, answer, the lists
    assert max(relay.sizes) < MAX_TOKEN_BYTES
    (mine,) = tinhuy.store.reconciliations()
    (theirs,) = hdnd.store.reconciliations()
    assert (mine.state, theirs.state) == ("differs", "differs")
    assert mine.differences == theirs.differences
    differences = json.loads(mine.differences or "[]")
    kinds = [d["kind"] for d in differences]
    assert kinds.count("missing-at-recipient") == MAX_ITEMS  # 40 whole days of 100
    (left,) = [d for d in differences if d["kind"] == "not-compared"]
    assert left["detail"].startswith(f"{LOST - MAX_ITEMS // PER_DAY} day(s) from 2026-03-13 to "
                                     "2026-04-01")
    named = {d["message_id"] for d in differences if d["kind"] == "missing-at-recipient"}
    assert named == {i.message_id for i in documents if "2026-02-01" <= i.day <= "2026-03-12"}
    assert left["days"] == LOST - MAX_ITEMS // PER_DAY
    # Status tells the documents that differ from the days left uncompared.
    (shown,) = [w["message"] for w in warnings(tinhuy) if w["code"] == "reconciliation-differs"]
    assert f"{MAX_ITEMS} document(s) differ between the two offices' records, and " \
        f"{LOST - MAX_ITEMS // PER_DAY} day(s) not compared (reconcile those months one by " \
        "one)" in shown
    assert tinhuy.store.audit_entries(kind="security-refused") == []
    assert hdnd.store.audit_entries(kind="security-refused") == []
