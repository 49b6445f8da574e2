"""Hostile or stale audit heads and witnesses, delivered through a node's real receiving path
(sealed, offered, stored, receipted, then applied by the handler the node wires): each is
refused with its own code in a ``security-refused`` audit entry, shows in status, and leaves
what is held as it was. Hostile objects are signed with real keys."""
from __future__ import annotations

import json
from pathlib import Path

import nacl.signing
import pytest

from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import PeerKey
from lienthong.keys.identity import NodeKeys
from lienthong.keys.jws import b64url_decode, b64url_encode
from lienthong.node.app.node import Node
from lienthong.node.audit.heads import sign_current_head, sign_head
from lienthong.node.audit.report import VerifyReport
from lienthong.node.audit.witness_check import check_witnesses
from lienthong.node.audit.witnesses import HEAD_KIND, WITNESS_KIND
from lienthong.node.identity.rotation import successor_keys
from lienthong.node.store.records import AuditHead
from lienthong.protocol.status import token_sha256
from lienthong.protocol.witness import issue_witness
from tests.node.reviewhelp import deliver, refusals, warnings
from tests.node.runtimehelp import NOW, FakeReactor, Office, enrol, make_office


@pytest.fixture
def offices(tmp_path: Path) -> tuple[Office, Office, Office]:
    """alpha and beta trust each other; gamma is a real office neither has enrolled."""
    reactor = FakeReactor()
    alpha = make_office(tmp_path, "alpha", reactor)
    beta = make_office(tmp_path, "beta", reactor, port=7444)
    gamma = make_office(tmp_path, "gamma", reactor, port=7445)
    enrol(alpha, beta)
    enrol(beta, alpha)
    return alpha, beta, gamma


def head(office: Office, seq: int, digest: str) -> str:
    return sign_head(office.runtime.keys.identity, seq=seq, hash=digest, time=NOW)


def tampered(token: str, **changes: object) -> str:
    """The token with its payload edited and its signature kept (as an attacker would)."""
    protected, payload, signature = token.split(".")
    fields = json.loads(b64url_decode(payload))
    fields.update(changes)
    edited = b64url_encode(json.dumps(fields, separators=(",", ":"), sort_keys=True).encode())
    return ".".join((protected, edited, signature))


def assert_refused(office: Office, mid: str, code: str) -> None:
    assert refusals(office).get(mid) == code, refusals(office)
    shown = [w for w in warnings(office) if w["code"] == "security-refusals"]
    assert shown and code in shown[0]["message"], warnings(office)


def test_a_head_that_does_not_verify_is_refused_and_nothing_is_kept(offices) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, gamma = offices
    node = Node(beta.runtime)
    # Signed by another office's real key (its own kid), and alpha's head with its hash edited.
    foreign = deliver(alpha, node, kind=HEAD_KIND, token=head(gamma, 3, "a" * 64))
    assert_refused(beta, foreign, "audit-head-invalid")
    edited = deliver(alpha, node, kind=HEAD_KIND,
                     token=tampered(head(alpha, 3, "a" * 64), hash="b" * 64))
    assert_refused(beta, edited, "audit-head-invalid")
    assert beta.store.peer_heads() == []


def test_a_contradicting_head_is_refused_and_the_held_one_kept(offices) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, _ = offices
    node = Node(beta.runtime)
    first = deliver(alpha, node, kind=HEAD_KIND, token=head(alpha, 5, "a" * 64))
    assert first not in refusals(beta)
    (held,) = beta.store.peer_heads(alpha.node_id)
    assert (held.seq, held.hash, held.witness_index) == (5, "a" * 64, 1)
    witnessed = beta.store.audit_entries(kind="audit-head-witnessed")
    assert [(e.message_id, e.detail["again"]) for e in witnessed] == [(first, False)]

    rewritten = deliver(alpha, node, kind=HEAD_KIND, token=head(alpha, 5, "d" * 64))
    assert_refused(beta, rewritten, "audit-head-contradiction")
    assert beta.store.peer_heads(alpha.node_id) == [held]

    # The very head sent again is no news: the same witness goes back, nothing is refused.
    again = deliver(alpha, node, kind=HEAD_KIND, token=head(alpha, 5, "a" * 64))
    assert again not in refusals(beta)
    assert beta.store.peer_heads(alpha.node_id) == [held]


def signed_heads(office: Office, times: list[str]) -> list[AuditHead]:
    """Heads of ``office``'s real audit chain, signed at ``times``, an entry or two apart."""
    out = []
    for n, at in enumerate(times):
        for _ in range(n + 1):
            office.store.append_audit("node-started", at, detail={})
        signed = sign_current_head(office.store, office.runtime.keys, at)
        assert signed is not None
        out.append(signed)
    return out


def test_heads_delivered_out_of_order_are_superseded_not_refused(offices) -> None:  # type: ignore[no-untyped-def]
    """alpha's outbox delivers its heads out of order: the later head is witnessed first,
    and each earlier one that arrives after it (signed in order with the heads held, before
    or between them) is recorded as superseded: an audit entry, no witness, no warning, and
    nothing held replaced or added."""
    alpha, beta, _ = offices
    node = Node(beta.runtime)
    one, two, three, four = signed_heads(alpha, ["2026-11-24T08:00:00Z", "2026-11-24T09:00:00Z",
                                                 "2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z"])
    assert one.seq < two.seq < three.seq < four.seq
    deliver(alpha, node, kind=HEAD_KIND, token=two.signature)
    deliver(alpha, node, kind=HEAD_KIND, token=four.signature)
    held = beta.store.peer_heads(alpha.node_id)
    assert [(h.seq, h.witness_index) for h in held] == [(two.seq, 1), (four.seq, 2)]

    late = [deliver(alpha, node, kind=HEAD_KIND, token=h.signature) for h in (three, one)]

    assert refusals(beta) == {}
    assert not [w for w in warnings(beta) if w["code"] == "security-refusals"], warnings(beta)
    superseded = {e.message_id: e.detail for e in
                  beta.store.audit_entries(kind="audit-head-superseded")}
    assert set(superseded) == set(late)
    assert [(superseded[m]["seq"], superseded[m]["by_seq"]) for m in late] == \
        [(three.seq, four.seq), (one.seq, four.seq)]
    assert superseded[late[0]]["hash"] == three.hash
    assert beta.store.peer_heads(alpha.node_id) == held
    assert len(beta.store.audit_entries(kind="audit-head-witnessed")) == 2


def test_an_earlier_head_signed_out_of_order_with_those_held_is_refused(offices) -> None:  # type: ignore[no-untyped-def]
    """A head for an earlier entry signed after a held head for a later one (or before a held
    head for an earlier one) says the office's log went backwards between two signatures:
    refused as audit-head-older, shown in status, and nothing held replaced."""
    alpha, beta, _ = offices
    node = Node(beta.runtime)
    deliver(alpha, node, kind=HEAD_KIND, token=sign_head(
        alpha.runtime.keys.identity, seq=2, hash="a" * 64, time="2026-11-24T09:00:00Z"))
    deliver(alpha, node, kind=HEAD_KIND, token=sign_head(
        alpha.runtime.keys.identity, seq=6, hash="b" * 64, time="2026-11-24T10:00:00Z"))
    held = beta.store.peer_heads(alpha.node_id)
    assert [h.seq for h in held] == [2, 6]

    after_the_later = deliver(alpha, node, kind=HEAD_KIND, token=sign_head(
        alpha.runtime.keys.identity, seq=4, hash="c" * 64, time="2026-11-24T10:30:00Z"))
    assert_refused(beta, after_the_later, "audit-head-older")
    reason = beta.store.audit_entries(kind="security-refused",
                                      message_id=after_the_later)[0].detail["reason"]
    assert "entry 6" in reason and "went backwards" in reason
    before_the_earlier = deliver(alpha, node, kind=HEAD_KIND, token=sign_head(
        alpha.runtime.keys.identity, seq=4, hash="c" * 64, time="2026-11-24T08:00:00Z"))
    assert_refused(beta, before_the_earlier, "audit-head-older")
    assert "entry 2" in beta.store.audit_entries(
        kind="security-refused", message_id=before_the_earlier)[0].detail["reason"]
    assert beta.store.audit_entries(kind="audit-head-superseded") == []
    assert beta.store.peer_heads(alpha.node_id) == held


def test_a_witness_of_a_head_we_never_signed_is_refused(offices) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, gamma = offices
    node = Node(alpha.runtime)
    # An entry in alpha's log, of which alpha never signed a head; beta witnesses one anyway.
    alpha.store.append_audit("node-started", NOW, detail={})
    entry = alpha.store.audit_entries(limit=1)[0]
    invented = issue_witness(beta.runtime.keys.identity, subject=alpha.node_id, seq=entry.seq,
                             hash=entry.hash, head_time=NOW, head_sha256="e" * 64, index=1,
                             prev_sha256=None, time=NOW)
    mid = deliver(beta, node, kind=WITNESS_KIND, token=invented)
    assert_refused(alpha, mid, "audit-witness-unknown-head")
    # One signed by an office that is not the sender does not verify at all.
    foreign = issue_witness(gamma.runtime.keys.identity, subject=alpha.node_id, seq=entry.seq,
                            hash=entry.hash, head_time=NOW, head_sha256="e" * 64, index=1,
                            prev_sha256=None, time=NOW)
    other = deliver(beta, node, kind=WITNESS_KIND, token=foreign)
    assert_refused(alpha, other, "audit-witness-invalid")
    assert alpha.store.head_witnesses() == []


def test_a_witness_contradicting_one_held_is_refused_and_the_held_one_kept(offices) -> None:  # type: ignore[no-untyped-def]
    alpha, beta, _ = offices
    node = Node(alpha.runtime)
    alpha.store.append_audit("node-started", NOW, detail={})
    own = sign_current_head(alpha.store, alpha.runtime.keys, NOW)
    assert own is not None

    def witness(time: str) -> str:
        return issue_witness(beta.runtime.keys.identity, subject=alpha.node_id, seq=own.seq,
                             hash=own.hash, head_time=own.time,
                             head_sha256=token_sha256(own.signature), index=1,
                             prev_sha256=None, time=time)

    first = deliver(beta, node, kind=WITNESS_KIND, token=witness(NOW))
    assert first not in refusals(alpha)
    (held,) = alpha.store.head_witnesses()
    other = deliver(beta, node, kind=WITNESS_KIND, token=witness("2026-11-25T09:00:00Z"))
    assert_refused(alpha, other, "audit-witness-contradiction")
    assert alpha.store.head_witnesses() == [held]


def test_a_stranger_signing_as_the_peer_is_refused(offices) -> None:  # type: ignore[no-untyped-def]
    """A head whose kid and node_id name alpha but whose signature is a stranger's key."""
    alpha, beta, _ = offices
    node = Node(beta.runtime)
    stranger = nacl.signing.SigningKey.generate()
    forged = sign_head(stranger, seq=2, hash="a" * 64, time=NOW)
    protected, _, _ = head(alpha, 2, "a" * 64).split(".")
    _, payload, signature = tampered(forged, node_id=alpha.node_id).split(".")
    mid = deliver(alpha, node, kind=HEAD_KIND, token=".".join((protected, payload, signature)))
    assert_refused(beta, mid, "audit-head-invalid")
    assert beta.store.peer_heads() == []


def rotate_identity(office: Office, holder: Office, now: str) -> str:
    """``office`` rotates its identity and ``holder`` applies the continuation (as
    identity/key_update_incoming.py does); return the new node ID."""
    return rotated_keys(office, holder, now).node_id


def rotated_keys(office: Office, holder: Office, now: str) -> NodeKeys:
    """As ``rotate_identity``; return the office's new keys."""
    new = successor_keys(office.runtime.keys)
    card = read_card(make_card(new, addresses=["127.0.0.1:7443"], now=now))
    keys = [PeerKey("identity", b64url_encode(card.identity_public), card.node_id, now),
            PeerKey("encryption", b64url_encode(card.encryption_public), card.encryption_kid,
                    now),
            PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], now)]
    holder.store.continue_peer_identity(office.node_id, keys, card.token, now)
    holder.runtime.refresh_directory()
    return new


def test_a_head_signed_just_before_the_sender_rotated_is_checked_with_the_key_that_signed_it(
        offices) -> None:  # type: ignore[no-untyped-def]
    """alpha signs a head and seals it; beta applies alpha's identity rotation; then the head
    arrives (from alpha's new node ID, in an envelope of its former identity, within the
    grace week). It is witnessed under the key its kid names, not refused under alpha's new
    key; a head that key signs dated after the rotation's grace week is refused."""
    alpha, beta, _ = offices
    node = Node(beta.runtime)
    before = head(alpha, 4, "a" * 64)
    late = sign_head(alpha.runtime.keys.identity, seq=6, hash="b" * 64,
                     time="2026-12-02T09:00:00Z")
    beta.runtime.reactor.advance(3600)  # an hour later (a key valid for no time is no key)
    new_id = rotate_identity(alpha, beta, "2026-11-25T09:00:00Z")
    assert beta.runtime.directory.verify_key_for(new_id) != alpha.runtime.keys.identity.verify_key

    mid = deliver(alpha, node, kind=HEAD_KIND, token=before, peer=new_id)

    assert mid not in refusals(beta)
    (held,) = beta.store.peer_heads()
    assert (held.node_id, held.seq, held.head) == (new_id, 4, before)
    refused = deliver(alpha, node, kind=HEAD_KIND, token=late, peer=new_id)
    assert_refused(beta, refused, "audit-head-invalid")
    assert "former identity key" in beta.store.audit_entries(
        kind="security-refused", message_id=refused)[0].detail["reason"]
    assert beta.store.peer_heads() == [held]


def test_a_head_stored_before_a_crash_is_applied_at_start_or_found_overtaken(offices) -> None:  # type: ignore[no-untyped-def]
    """Two heads committed while the handler never ran (the crash); a later one arrived after
    the restart before the catch-up: start-up witnesses the first, and records the second
    as overtaken by the later head instead of refusing it as a hostile older head."""
    alpha, beta, _ = offices
    crashed = Node(beta.runtime)
    crashed.offers.control[HEAD_KIND] = lambda peer, header, stored: None
    first = deliver(alpha, crashed, kind=HEAD_KIND, token=head(alpha, 3, "a" * 64))
    second = deliver(alpha, crashed, kind=HEAD_KIND, token=head(alpha, 5, "b" * 64))
    restarted = Node(beta.runtime)
    deliver(alpha, restarted, kind=HEAD_KIND, token=head(alpha, 4, "c" * 64))
    assert [h.seq for h in beta.store.peer_heads()] == [4]

    applied: list[int] = []
    restarted.head_witnessing.recover().addCallback(applied.append)

    assert applied == [2]
    kinds = {e.message_id: e.kind for e in beta.store.audit_entries()
             if e.message_id in (first, second)}
    assert kinds == {first: "audit-head-superseded", second: "audit-head-witnessed"}
    assert [h.seq for h in beta.store.peer_heads()] == [4, 5]
    assert refusals(beta) == {}
    restarted.head_witnessing.recover().addCallback(applied.append)
    assert applied == [2, 0]


def test_witnesses_from_before_and_after_the_witness_rotated_are_one_sequence(offices) -> None:  # type: ignore[no-untyped-def]
    """beta witnesses alpha's head 1 as its former identity and head 2 as its new one: alpha
    keeps both, and audit verify reads them as one numbering, not as witnesses deleted."""
    alpha, beta, _ = offices
    node = Node(alpha.runtime)
    alpha.store.append_audit("node-started", NOW, detail={})
    one = sign_current_head(alpha.store, alpha.runtime.keys, NOW)
    alpha.store.append_audit("node-started", "2026-11-25T08:30:00Z", detail={})
    two = sign_current_head(alpha.store, alpha.runtime.keys, "2026-11-25T08:30:00Z")
    assert one is not None and two is not None

    def witness(keys: NodeKeys, of: AuditHead, index: int, prev: str | None, at: str) -> str:
        return issue_witness(keys.identity, subject=alpha.node_id, seq=of.seq, hash=of.hash,
                             head_time=of.time, head_sha256=token_sha256(of.signature),
                             index=index, prev_sha256=prev, time=at)

    first = witness(beta.runtime.keys, one, 1, None, NOW)
    deliver(beta, node, kind=WITNESS_KIND, token=first)
    alpha.runtime.reactor.advance(3600)
    new = rotated_keys(beta, alpha, "2026-11-25T09:00:00Z")
    deliver(beta, node, kind=WITNESS_KIND, keys=new, peer=new.node_id,
            token=witness(new, two, 2, token_sha256(first), "2026-11-25T09:00:01Z"))

    assert refusals(alpha) == {}
    assert sorted(w.witness_index for w in alpha.store.head_witnesses()) == [1, 2]
    report = VerifyReport()
    check_witnesses(alpha.store, {alpha.node_id}, report,
                    peer_name=alpha.runtime.peer_name)
    assert report.problems == [] and report.witnesses == 2
