"""Hostile peers, signed objects that lie: envelopes claiming another sender, relayed or signed
with the wrong key or typed as something else, replays and reused message IDs, and receipts
from a hostile receiver that do not match what was sent (tests/faults/arena.py).
"""
from __future__ import annotations

import pytest

from lienthong.keys import jws
from lienthong.protocol.envelope import ENVELOPE_TYP
from lienthong.protocol.events import Error, Have, Offer, Receipt, Reject
from tests.faults.arena import Arena, connect
from tests.faults.hostile import (
    FrameSocket,
    HostileReceiver,
    card_of,
    forged_receipt,
    make_identity,
    receive_transfer,
    resign,
    seal,
)
from tests.integration.harness import is_document, wait_for

# -- envelopes that lie ------------------------------------------------------------------------

def test_envelope_claiming_another_sender(arena: Arena) -> None:
    """An envelope naming alpha as sender, signed by mallory: REJECT sender-mismatch, audited
    as a security event, nothing stored."""
    name, data = arena.honest()
    client = connect(arena)
    try:
        genuine = seal(arena.mallory, card_of(arena.beta), b"gia mao\n" * 100, name="gia.txt")
        keys = jws.decode(genuine.token, ENVELOPE_TYP).payload["keys"]
        keys[arena.alpha.node_id] = keys.pop(arena.mallory.node_id)
        forged = resign(genuine, arena.mallory, sender=arena.alpha.node_id,
                        kid=arena.alpha.node_id, keys=keys)
        answer = client.offer(forged)
        assert isinstance(answer, Reject) and answer.code == "sender-mismatch", answer
        wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                          message_id=forged.message_id),
                 timeout=15, what="a security event for the forged sender")
    finally:
        client.close()
    arena.delivered(name, data)
    assert not list(arena.beta.inbox.glob("*/gia.txt"))


def test_genuine_envelope_relayed_by_another_peer(arena: Arena) -> None:
    """alpha's real, correctly signed header offered over mallory's connection: REJECT
    sender-mismatch (no relaying: the signer must be the TLS peer)."""
    name, data = arena.honest()
    arena.delivered(name, data)
    row = next(r for r in arena.alpha.query("recent_dispatches", 50) if r.name == name)
    client = connect(arena)
    try:
        client.send(Offer(message_id=row.message_id, envelope=row.header_token,
                          ciphertext_size=row.ciphertext_size, priority=3))
        answer = client.next_event()
        assert isinstance(answer, Reject) and answer.code == "sender-mismatch", answer
        wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                          message_id=row.message_id),
                 timeout=15, what="a security event for the relayed envelope")
    finally:
        client.close()


def test_envelope_signed_with_the_wrong_key(arena: Arena) -> None:
    """An envelope that names mallory but is signed by another key: REJECT bad-signature."""
    client = connect(arena)
    try:
        impostor = make_identity(arena.base / "impostor", "impostor")
        genuine = seal(arena.mallory, card_of(arena.beta), b"x" * 100, name="sai-khoa.txt")
        forged = resign(genuine, impostor, kid=arena.mallory.node_id)
        answer = client.offer(forged)
        assert isinstance(answer, Reject) and answer.code == "bad-signature", answer
    finally:
        client.close()


def test_replay_of_a_delivered_envelope_returns_the_same_receipt(arena: Arena) -> None:
    """Replaying a delivered envelope (new connection) gets HAVE with the byte-identical receipt,
    a 'duplicate' audit entry, and no second file."""
    payload = b"Quyet dinh phat lai\n" * 300
    sealed = seal(arena.mallory, card_of(arena.beta), payload, name="phat-lai.txt")
    client = connect(arena)
    try:
        first = client.deliver(sealed)
        assert isinstance(first, Receipt), first
    finally:
        client.close()
    name, data = arena.honest()
    client = connect(arena)
    try:
        again = client.offer(sealed)
        assert isinstance(again, Have) and again.receipt == first.receipt, again
    finally:
        client.close()
    wait_for(lambda: arena.beta.query("audit_entries", kind="duplicate",
                                      message_id=sealed.message_id),
             timeout=15, what="a duplicate audit entry")
    copies = [p for p in (arena.beta.inbox / "mallory").iterdir()
              if is_document(p) and p.is_file() and p.read_bytes() == payload]
    assert len(copies) == 1
    arena.delivered(name, data)


def test_same_message_id_with_different_content_is_refused(arena: Arena) -> None:
    """A second envelope reusing a delivered message ID for other content must be REFUSED and
    raised as a security event, not answered with the first document's receipt."""
    sealed = seal(arena.mallory, card_of(arena.beta), b"ban goc\n" * 100, name="goc.txt")
    client = connect(arena)
    try:
        assert isinstance(client.deliver(sealed), Receipt)
        other = seal(arena.mallory, card_of(arena.beta), b"ban khac\n" * 100, name="goc.txt",
                     message_id=sealed.message_id)
        answer = client.offer(other)
        assert isinstance(answer, Reject), (
            f"beta answered {type(answer).__name__} to a different document under a delivered "
            "message ID (it must compare the envelope with the one it stored)")
    finally:
        client.close()
    wait_for(lambda: arena.beta.query("audit_entries", kind="security-refused",
                                      message_id=sealed.message_id),
             timeout=15, what="a security event for the reused message ID")


def test_envelope_header_typed_as_something_else(arena: Arena) -> None:
    """A correctly signed token of another type (a receipt) offered as an envelope: refused."""
    client = connect(arena)
    try:
        sealed = seal(arena.mallory, card_of(arena.beta), b"x" * 10)
        fields = jws.decode(sealed.token, ENVELOPE_TYP).payload
        token = jws.sign(arena.mallory.keys.identity, "lienthong-receipt/1", fields,
                         kid=arena.mallory.node_id)
        client.send(Offer(message_id=sealed.message_id, envelope=token,
                          ciphertext_size=sealed.size, priority=3))
        answer = client.next_event()
        assert isinstance(answer, (Reject, Error)) and answer.code == "envelope-wrong-type", answer
    finally:
        client.close()


# -- a hostile receiver: receipts that lie -----------------------------------------------------

def _lying_receiver(arena: Arena, make_token):  # type: ignore[no-untyped-def]
    def answer(conn: FrameSocket, offer: Offer) -> None:
        receive_transfer(conn, offer)
        conn.send(Receipt(message_id=offer.message_id, receipt=make_token(offer.envelope)))
        conn.next_event(timeout=10)  # alpha's verdict (an ERROR) or its close
    return HostileReceiver(arena.mallory, arena.mallory_port, answer)


@pytest.mark.parametrize("lie", ["wrong-digest", "wrong-signer", "wrong-message"])
def test_receipt_that_does_not_match_is_refused(arena: Arena, lie: str) -> None:
    """alpha sends to mallory; mallory returns a receipt for the wrong digest, signed by someone
    else, or for another message: alpha audits receipt-refused, keeps the document pending
    (not in sent/), and keeps delivering to beta meanwhile."""
    eve = make_identity(arena.base / f"eve-{lie}", "eve")

    def token(header_token: str) -> str:
        if lie == "wrong-digest":
            return forged_receipt(arena.mallory, header_token, sha256="0" * 64)
        if lie == "wrong-message":
            return forged_receipt(arena.mallory, header_token, message_id="e" * 32)
        return jws.sign(eve.keys.identity, "lienthong-receipt/1",
                        jws.decode(forged_receipt(arena.mallory, header_token),
                                   "lienthong-receipt/1").payload, kid=arena.mallory.node_id)

    before = len(arena.alpha.query("audit_entries", kind="receipt-refused",
                                   peer=arena.mallory.node_id))
    receiver = _lying_receiver(arena, token)
    try:
        document = f"cho-mallory-{lie}.txt"
        arena.alpha.drop("mallory", document, b"gui mallory\n" * 100)
        name, data = arena.honest()
        wait_for(lambda: len(arena.alpha.query("audit_entries", kind="receipt-refused",
                                                peer=arena.mallory.node_id)) > before,
                 timeout=30, what="alpha to refuse the lying receipt")
        arena.delivered(name, data)
    finally:
        receiver.stop()
    assert not receiver.errors, receiver.errors
    row = next(r for r in arena.alpha.query("recent_dispatches", 100) if r.name == document)
    assert row.state != "sent"
    assert all(d.state != "delivered" for d in row.deliveries)
    assert not (arena.alpha.home / "sent" / "mallory" / document).exists()
