"""Hostile reconciliation summaries delivered through a node's real receiving path (sealed,
offered, stored, receipted, applied by the handler the node wires): one that does not verify,
one addressed to another office, one answering an exchange never asked for and one
contradicting the answer already held are each refused with their own code in a
``security-refused`` audit entry, shown in status, and the exchange held is left as it was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong.keys.jws import b64url_decode, b64url_encode
from lienthong.node.app.node import Node
from lienthong.node.reconciliation.exchange import SUMMARY_KIND, request_reconciliation
from lienthong.protocol.reconciliation import digest_side, issue_summary
from tests.node.audit.test_received_heads import rotate_identity
from tests.node.reviewhelp import deliver, refusals, warnings
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office

PERIOD = "2026-11"


@pytest.fixture
def asked(tmp_path: Path) -> tuple[Office, Office, Office, Node, str]:
    """alpha (a running node) asked beta to reconcile November; gamma is a stranger."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    gamma = make_office(tmp_path, "gamma", reactor, port=7445)
    enrol(alpha, beta)
    enrol(beta, alpha)
    node = Node(alpha.runtime)
    node.reconciler.monthly = False  # only the exchange asked for here
    row = request_reconciliation(alpha.store, beta.node_id, PERIOD, NOW)
    node.reconciler.poll()
    assert alpha.store.reconciliation_by_id(row.id).state == "pending"
    return alpha, beta, gamma, node, row.exchange


def answer(office: Office, exchange: str, *, peer: str, time: str = NOW,
           period: str = PERIOD) -> str:
    """An answer signed with ``office``'s real key: nothing sent, nothing received."""
    return issue_summary(office.runtime.keys.identity, role="answer", exchange=exchange,
                         peer=peer, period=period, time=time, sent=digest_side([]),
                         received=digest_side([]))


def assert_refused(office: Office, mid: str, code: str) -> None:
    assert refusals(office).get(mid) == code, refusals(office)
    shown = [w for w in warnings(office) if w["code"] == "security-refusals"]
    assert shown and code in shown[0]["message"], warnings(office)


def test_a_summary_that_does_not_verify_is_refused(asked) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, gamma, node, exchange = asked
    protected, payload, signature = answer(beta, exchange, peer=alpha.node_id).split(".")
    fields = json.loads(b64url_decode(payload))
    fields["sent"]["count"] = 0  # unchanged, but re-encoded: any edit breaks the signature
    fields["time"] = "2026-11-25T08:00:01Z"
    edited = b64url_encode(json.dumps(fields, separators=(",", ":")).encode())
    mid = deliver(beta, node, kind=SUMMARY_KIND, token=f"{protected}.{edited}.{signature}")
    assert_refused(alpha, mid, "reconciliation-summary-invalid")
    # Signed by a real office that is not the sender (gamma's key, gamma's kid).
    foreign = deliver(beta, node, kind=SUMMARY_KIND,
                      token=answer(gamma, exchange, peer=alpha.node_id))
    assert_refused(alpha, foreign, "reconciliation-summary-invalid")
    (row,) = alpha.store.reconciliations()
    assert (row.state, row.peer_summary) == ("pending", None)


def test_a_summary_for_another_office_is_refused(asked) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, gamma, node, exchange = asked
    mid = deliver(beta, node, kind=SUMMARY_KIND, token=answer(beta, exchange, peer=gamma.node_id))
    assert_refused(alpha, mid, "reconciliation-not-for-us")
    (row,) = alpha.store.reconciliations()
    assert (row.state, row.peer_summary) == ("pending", None)


def test_an_answer_to_an_exchange_never_asked_for_is_refused(asked) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, _, node, _ = asked
    mid = deliver(beta, node, kind=SUMMARY_KIND, token=answer(beta, "f" * 32, peer=alpha.node_id))
    assert_refused(alpha, mid, "reconciliation-unknown-exchange")
    assert len(alpha.store.reconciliations()) == 1


def test_an_answer_contradicting_the_one_held_is_refused_and_the_held_one_kept(asked) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, _, node, exchange = asked
    first = answer(beta, exchange, peer=alpha.node_id)
    mid = deliver(beta, node, kind=SUMMARY_KIND, token=first)
    assert mid not in refusals(alpha)
    (held,) = alpha.store.reconciliations()
    assert (held.state, held.peer_summary) == ("agreed", first)
    (outcome,) = alpha.store.audit_entries(kind="reconciliation-summary-received")
    assert (outcome.message_id, outcome.detail["outcome"]) == (mid, "agreed")

    other = deliver(beta, node, kind=SUMMARY_KIND,
                    token=answer(beta, exchange, peer=alpha.node_id, time="2026-11-25T09:00:00Z"))
    assert_refused(alpha, other, "reconciliation-contradiction")
    wrong_period = deliver(beta, node, kind=SUMMARY_KIND,
                           token=answer(beta, exchange, peer=alpha.node_id, period="2026-10"))
    assert_refused(alpha, wrong_period, "reconciliation-contradiction")
    assert alpha.store.reconciliations() == [held]
    # The held answer itself, delivered again, is no news and no refusal.
    again = deliver(beta, node, kind=SUMMARY_KIND, token=first)
    assert again not in refusals(alpha)
    assert alpha.store.reconciliations() == [held]


def test_an_answer_stored_before_a_crash_is_applied_at_start_once(asked) -> None:  # type: ignore[no-untyped-def]
    """Receipted and committed, but the node stopped before the handler ran (as the failpoint
    ``receiver-before-control-applied`` does): start-up applies it, and only once."""
    alpha, beta, _, node, exchange = asked
    node.offers.control[SUMMARY_KIND] = lambda peer, header, stored: None  # the crash
    first = answer(beta, exchange, peer=alpha.node_id)
    mid = deliver(beta, node, kind=SUMMARY_KIND, token=first)
    assert alpha.store.reconciliations()[0].state == "pending"

    restarted = Node(alpha.runtime)
    applied: list[int] = []
    restarted.reconciler.recover().addCallback(applied.append)

    assert applied == [1]
    (row,) = alpha.store.reconciliations()
    assert (row.state, row.peer_summary) == ("agreed", first)
    (outcome,) = alpha.store.audit_entries(kind="reconciliation-summary-received")
    assert outcome.message_id == mid
    restarted.reconciler.recover().addCallback(applied.append)
    assert applied == [1, 0]


def test_an_answer_signed_just_before_the_peer_rotated_is_checked_with_the_key_that_signed_it(
        asked) -> None:  # type: ignore[no-untyped-def]
    """beta signs and seals its answer, then rotates its identity and alpha applies that; the
    answer, arriving afterwards from beta's new node ID, is verified with the key its kid
    names and closes the exchange asked of beta's former ID."""
    alpha, beta, _, node, exchange = asked
    signed = answer(beta, exchange, peer=alpha.node_id)
    alpha.runtime.reactor.advance(3600)
    new_id = rotate_identity(beta, alpha, "2026-11-25T09:00:00Z")

    mid = deliver(beta, node, kind=SUMMARY_KIND, token=signed, peer=new_id)

    assert mid not in refusals(alpha)
    (row,) = alpha.store.reconciliations()
    assert (row.state, row.peer_summary) == ("agreed", signed)
