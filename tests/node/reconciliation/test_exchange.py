"""The monthly run starts by itself from the injected clock; an unanswered request is asked
again (shown as pending meanwhile); a summary that does not verify is refused and audited."""
from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed

from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.node.reconciliation.exchange import Reconciler, request_reconciliation
from lienthong.node.reconciliation.records import own_items
from lienthong.protocol.fields import new_message_id, rfc3339_utc
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


def test_a_request_and_its_retry_arriving_together_are_answered_once_then_again(
        tmp_path: Path) -> None:
    """Both copies of one request applied at the same time (a peer back from an outage gets
    the request and its retry together): one exchange row, the same answer sent twice, no
    failure. Before summaries were applied one at a time, both found no row while the first
    still read its records, and the second insert broke the exchange's unique key."""
    reactor = FakeReactor()
    a, b = make_office(tmp_path, "aa", reactor), make_office(tmp_path, "bb", reactor, port=7444)
    enrol(a, b)
    enrol(b, a)
    asked = Sent()
    request_reconciliation(a.store, b.node_id, "2026-11", rfc3339_utc(1796083200.0))
    Reconciler(a.runtime, asked, retry=3600, monthly=False).poll()
    ((_, _, token),) = asked.items
    answered = Sent()
    answerer = Reconciler(b.runtime, answered, retry=3600, monthly=False)
    # The answerer's look-up of its own records is held until both copies have arrived.
    held: list[Deferred[Any]] = []
    db = b.runtime.db

    def held_db(fn: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if fn is not own_items:
            return db(fn, *args, **kwargs)
        d: Deferred[Any] = Deferred()
        held.append(d)
        return d.addCallback(lambda _: fn(*args, **kwargs))

    b.runtime.db = held_db  # type: ignore[method-assign]
    done = []
    for copy in ("first", "retry"):
        path = tmp_path / f"{copy}.jws"
        path.write_bytes(token)
        header = types.SimpleNamespace(message_id=new_message_id())
        done.append(answerer.on_summary(a.node_id, header, path))  # type: ignore[arg-type]
    while held:
        held.pop(0).callback(None)
    failures: list[Any] = []
    for d in done:
        d.addErrback(failures.append)
    assert failures == []
    assert len(b.store.reconciliations()) == 1
    outcomes = [e.detail["outcome"] for e in b.store.audit_entries(
        kind="reconciliation-summary-received")]
    assert outcomes == ["answered", "answered-again"]
    assert len(answered.items) == 2 and answered.items[0][2] == answered.items[1][2]
