"""The monthly run starts by itself from the injected clock; an unanswered request is asked
again (shown as pending meanwhile); a summary that does not verify is refused and audited."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import succeed

from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.node.reconciliation.exchange import Reconciler
from lienthong.protocol.fields import rfc3339_utc
from tests.node.runtimehelp import FakeReactor, enrol, make_office


class Sent:
    """Records what would be sent (the outbox is not what is tested here)."""

    def __init__(self) -> None:
        self.items: list[tuple[list[str], dict[str, Any], bytes]] = []

    def send_control(self, recipients: list[str], *, name: str, data: bytes,
                     meta: dict[str, Any]) -> Any:
        self.items.append((recipients, meta, data))
        return succeed("0" * 32)


def test_monthly_run_asks_for_last_month_and_retries_until_answered(tmp_path: Path) -> None:
    reactor = FakeReactor()
    clock = [1796083200.0]  # 2026-12-01T00:00:00Z
    a, b = make_office(tmp_path, "aa", reactor), make_office(tmp_path, "bb", reactor, port=7444)
    enrol(a, b)
    enrol(b, a)
    first, other = sorted([a, b], key=lambda o: o.node_id)
    first.runtime.wall_clock = lambda: clock[0]
    sent = Sent()
    reconciler = Reconciler(first.runtime, sent, retry=3600, monthly=True)
    reconciler.poll()
    rows = first.store.reconciliations()
    assert [(r.period, r.state, r.attempts) for r in rows] == [("2026-11", "pending", 1)]
    assert sent.items[0][0] == [other.node_id] and sent.items[0][1]["role"] == "request"
    reconciler.poll()  # not yet due, and the monthly run does not ask twice
    assert len(sent.items) == 1 and len(first.store.reconciliations()) == 1
    clock[0] += 3601
    reconciler.poll()
    row = first.store.reconciliations()[0]
    assert (row.state, row.attempts, len(sent.items)) == ("pending", 2, 2)
    assert sent.items[1][2] == sent.items[0][2]  # the same signed request, asked again
    assert "reconciliation-retried" in [e.kind for e in first.store.audit_entries()]
    assert rfc3339_utc(clock[0]) < (row.next_attempt_at or "")


def test_monthly_run_skips_a_peer_enrolled_after_the_month(tmp_path: Path) -> None:
    """Enrolled on 1 December, the peer exchanged nothing with us in November: not asked."""
    reactor = FakeReactor()
    a, b = make_office(tmp_path, "aa", reactor), make_office(tmp_path, "bb", reactor, port=7444)
    for office, other in ((a, b), (b, a)):
        card = read_card(other.card_text)
        office.store.add_peer(Peer.from_card(card, now="2026-12-01T00:00:00Z"), card.token,
                              "2026-12-01T00:00:00Z")
        office.runtime.refresh_directory()
    first = min(a, b, key=lambda o: o.node_id)
    first.runtime.wall_clock = lambda: 1796083200.0 + 86400  # 2026-12-02
    sent = Sent()
    Reconciler(first.runtime, sent, retry=3600, monthly=True).poll()
    assert first.store.reconciliations() == [] and sent.items == []
