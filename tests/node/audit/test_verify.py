"""audit verify: passes on an honest store, and names the entry, receipt or file after tampering.

The honest home is built with the real pieces: a node home with its keystore and card, a real
SQLite store, envelopes sealed and signed by the protocol code, receipts issued by the
recipients' identity keys, documents and receipt copies in sent/ and inbox/, and a head signed
with the node's identity key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import nacl.public
import pytest

from lienthong.keys.card import PeerCard, make_card, read_card
from lienthong.keys.directory import Peer
from lienthong.keys.identity import NodeKeys, generate_node_keys
from lienthong.node.app.demo import open_keys
from lienthong.node.audit.heads import (
    HEAD_TYP,
    BadHead,
    sign_current_head,
    sign_head,
    verify_head,
    verify_head_row,
)
from lienthong.node.audit.verify import AuditFailed, verify_store
from lienthong.node.identity.provision import create_node_home
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import NewDispatch, NewRecall, NewReceived
from lienthong.protocol.receipt import issue_receipt
from lienthong.protocol.sealing import seal_all

T0 = "2026-11-25T08:00:00Z"
T1 = "2026-11-25T08:00:05Z"
T2 = "2026-11-25T08:00:09Z"
SENT_TEXT = "Công văn số 45/UBND-VP về lịch tiếp công dân.\n".encode()
RECEIVED_TEXT = "Báo cáo kết quả kỳ họp thứ 9.\n".encode()


@dataclasses.dataclass
class Home:
    home: Path
    config: object
    keys: NodeKeys
    card: PeerCard
    peer: NodeKeys
    peer_card: PeerCard
    db_path: Path
    sent_file: Path
    inbox_file: Path
    sent_message_id: str
    received_message_id: str

    def store(self) -> Store:
        return open_store(f"sqlite:///{self.db_path}")

    def verify(self) -> object:
        store = self.store()
        try:
            return verify_store(store, home=self.home, own_card=self.card,
                                peer_name=lambda node_id: "hdnd")
        finally:
            store.close()


def _reader(keys: NodeKeys) -> tuple[str, nacl.public.PublicKey]:
    return keys.current_encryption.kid, keys.current_encryption.private.public_key


def make_honest_home(base: Path) -> Home:
    """A node 'tinhuy' that sent one document to 'hdnd' and received one from it, honestly."""
    new = create_node_home(base / "tinhuy", name="tinhuy", display_name="Văn phòng Tỉnh ủy",
                           listen="127.0.0.1:7701", advertise=["127.0.0.1:7701"],
                           passphrase=None, now=T0, kdf="minimal")
    config = new.config
    keys = open_keys(config)
    card = read_card(new.card_path.read_text())
    peer = generate_node_keys("hdnd", now=T0)
    peer_card = read_card(make_card(peer, addresses=["127.0.0.1:7702"], now=T0))
    db_path = config.home / "state" / "lienthong.db"
    store = open_store(config.store.url)
    try:
        store.add_peer(Peer.from_card(peer_card, now=T0), peer_card.token, T0)
        # -- a document we sent, receipted by hdnd and kept in sent/ -----------------------
        sent_id = "a1" * 16
        envelope, _ = seal_all(SENT_TEXT, identity=keys.identity, sender=keys.node_id,
                               sender_key=_reader(keys), recipients={peer.node_id: _reader(peer)},
                               name="Công văn 45.txt", message_id=sent_id, created=T0)
        header = envelope.header
        store.add_dispatch(NewDispatch(
            message_id=sent_id, name=header.name, target="hdnd",
            spool_dir=str(config.spool / sent_id), header_token=envelope.header_token,
            size=header.size, sha256=header.sha256, ciphertext_size=header.ciphertext_size,
            priority=3, meta={}, recipients=(peer.node_id,)), T0)
        store.append_audit("taken", T0, message_id=sent_id, detail={"name": header.name})
        store.append_audit("sealed", T0, message_id=sent_id, digest=header.sha256)
        token = issue_receipt(peer.identity, recipient=peer.node_id, header=header, time=T1)
        store.record_receipt(sent_id, peer.node_id, token, T1)
        store.append_audit("receipt-verified", T1, peer=peer.node_id, message_id=sent_id,
                           digest=header.sha256)
        sent_file = config.sent / "hdnd" / "Công văn 45.txt"
        sent_file.parent.mkdir(parents=True)
        sent_file.write_bytes(SENT_TEXT)
        (sent_file.parent / "Công văn 45.txt.hdnd.receipt.jws").write_text(token + "\n")
        store.mark_dispatch_sent(sent_id, str(sent_file), T1)
        store.append_audit("delivered", T1, message_id=sent_id, digest=header.sha256)
        # -- a document hdnd sent us, receipted by us and kept in inbox/ --------------------
        received_id = "b2" * 16
        incoming, _ = seal_all(RECEIVED_TEXT, identity=peer.identity, sender=peer.node_id,
                               sender_key=_reader(peer), recipients={keys.node_id: _reader(keys)},
                               name="Báo cáo kỳ họp 9.txt", message_id=received_id, created=T1)
        inbox_file = config.inbox / "hdnd" / "Báo cáo kỳ họp 9.txt"
        store.begin_publish(NewReceived(
            sender_node_id=peer.node_id, message_id=received_id, name=incoming.header.name,
            stored_path=str(inbox_file.relative_to(config.home)), size=incoming.header.size,
            sha256=incoming.header.sha256, header_token=incoming.header_token, meta={}), T2)
        inbox_file.parent.mkdir(parents=True)
        inbox_file.write_bytes(RECEIVED_TEXT)
        ours = issue_receipt(keys.identity, recipient=keys.node_id, header=incoming.header,
                             time=T2)
        (inbox_file.parent / "Báo cáo kỳ họp 9.txt.receipt.jws").write_text(ours + "\n")
        store.complete_publish(peer.node_id, received_id, ours, T2)
        store.append_audit("received", T2, peer=peer.node_id, message_id=received_id,
                           digest=incoming.header.sha256, detail={"name": incoming.header.name})
        store.append_audit("receipt-issued", T2, peer=peer.node_id, message_id=received_id,
                           digest=incoming.header.sha256)
        sign_current_head(store, keys, T2)
    finally:
        store.close()
    return Home(config.home, config, keys, card, peer, peer_card, db_path, sent_file,
                inbox_file, sent_id, received_id)


@pytest.fixture
def honest(tmp_path: Path) -> Iterator[Home]:
    yield make_honest_home(tmp_path)


def tamper(home: Home, *statements: str) -> None:
    with sqlite3.connect(home.db_path) as raw:
        for statement in statements:
            raw.execute(statement)


def failure(home: Home) -> AuditFailed:
    with pytest.raises(AuditFailed) as caught:
        home.verify()
    return caught.value


# -- heads ---------------------------------------------------------------------------------------

def test_a_head_verifies_with_the_node_key_and_not_as_another_type(honest: Home) -> None:
    """A head token round-trips, carries the node ID, and its typ separates it from receipts."""
    token = sign_head(honest.keys.identity, seq=3, hash="c" * 64, time=T2)
    info = verify_head(token, honest.keys.identity.verify_key)
    assert (info.seq, info.hash, info.time, info.node_id) == (3, "c" * 64, T2, honest.keys.node_id)
    assert f'"typ":"{HEAD_TYP}"' in __import__("base64").urlsafe_b64decode(
        token.split(".")[0] + "==").decode()
    with pytest.raises(BadHead):
        verify_head(token, honest.peer.identity.verify_key)


def test_signing_the_head_twice_adds_nothing_new(honest: Home) -> None:
    """sign_current_head signs only when the tip moved since the last head."""
    store = honest.store()
    try:
        assert sign_current_head(store, honest.keys, T2) is None
        store.append_audit("node-stopped", T2)
        head = sign_current_head(store, honest.keys, T2)
        assert head is not None and head.seq == store.audit_tip()[0]
        assert verify_head_row(store.audit_heads()[-1], honest.keys.identity.verify_key).seq \
            == head.seq
    finally:
        store.close()


# -- the honest store ---------------------------------------------------------------------------

def test_an_honest_store_verifies(honest: Home) -> None:
    """Chain, head, both receipts and both kept files check out; nothing is reported."""
    report = honest.verify()
    assert report.problems == [] and report.notes == []
    assert (report.entries, report.heads, report.receipts, report.files) == (6, 1, 2, 2)
    assert report.last_signed_seq == report.last_seq == 6


def test_unsigned_tail_and_moved_files_are_notes_not_failures(honest: Home) -> None:
    """Entries after the last head and a document a clerk moved away are only noted."""
    store = honest.store()
    try:
        store.append_audit("node-stopped", T2)
    finally:
        store.close()
    honest.inbox_file.rename(honest.home / "Báo cáo moved.txt")
    report = honest.verify()
    assert report.missing_files == 1
    assert any("entry 7 not yet covered" in note for note in report.notes)
    assert any("inbox/hdnd/Báo cáo kỳ họp 9.txt" in note for note in report.notes)


# -- tampering, each named -----------------------------------------------------------------------

def test_editing_a_row_is_named(honest: Home) -> None:
    """An edited detail in entry 1 fails verification at audit entry 1."""
    tamper(honest, "UPDATE audit SET detail = '{\"name\":\"Khác.txt\"}' WHERE seq = 1")
    report = failure(honest).report
    problems = report.problems
    assert [(p.check, p.seq) for p in problems] == [("chain", 1)]
    assert problems[0].where == "audit entry 1" and "edited" in problems[0].what
    # Issue 20: it says how many entries it read, not "0 entries".
    assert report.entries > 1


def test_rewriting_a_row_and_rehashing_the_chain_is_caught_by_the_signed_head(
        honest: Home) -> None:
    """Recomputing every hash after an edit still fails: the chain misses the signed head."""
    from lienthong.node.store.audit_chain import entry_hash
    store = honest.store()
    try:
        entries = store.audit_entries()
    finally:
        store.close()
    prev = entries[0].prev_hash
    statements = []
    for entry in entries:
        fields = entry.hashed_fields()
        if entry.seq == 2:
            fields["digest"] = "0" * 64
        new = entry_hash(prev, fields)
        statements.append(f"UPDATE audit SET prev_hash = 'x{entry.seq}', hash = '{new}'"
                          + (f", digest = '{'0' * 64}'" if entry.seq == 2 else "")
                          + f" WHERE seq = {entry.seq}")
        statements.append(f"UPDATE audit SET prev_hash = '{prev}' WHERE seq = {entry.seq}")
        prev = new
    tamper(honest, *statements)
    problems = failure(honest).report.problems
    assert len(problems) == 1 and problems[0].seq == 6 and "signed" in problems[0].what


def test_deleting_a_row_is_named(honest: Home) -> None:
    """Deleting entry 3 is reported at entry 4 as 'entry 3 is missing'."""
    tamper(honest, "DELETE FROM audit WHERE seq = 3")
    problems = failure(honest).report.problems
    assert [(p.check, p.seq) for p in problems] == [("chain", 4)]
    assert "entry 3 is missing" in problems[0].what


def test_deleting_the_last_rows_is_caught_by_the_head(honest: Home) -> None:
    """Cutting the log short leaves the signed head pointing past the end."""
    tamper(honest, "DELETE FROM audit WHERE seq >= 5")
    problems = failure(honest).report.problems
    assert problems[0].check == "chain" and "cut short" in problems[0].what


def test_reordering_rows_is_named(honest: Home) -> None:
    """Swapping the seq of entries 4 and 5 is reported at entry 4."""
    tamper(honest, "UPDATE audit SET seq = -5 WHERE seq = 5",
           "UPDATE audit SET seq = 5 WHERE seq = 4",
           "UPDATE audit SET seq = 4 WHERE seq = -5")
    problems = failure(honest).report.problems
    assert [(p.check, p.seq) for p in problems] == [("chain", 4)]


def test_a_forged_head_is_named(honest: Home) -> None:
    """A head row whose signature was altered is reported as that head, and not trusted."""
    store = honest.store()
    try:
        signature = store.audit_heads()[0].signature
    finally:
        store.close()
    forged = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    tamper(honest, f"UPDATE audit_heads SET signature = '{forged}'")
    problems = failure(honest).report.problems
    assert [(p.check, p.seq) for p in problems] == [("heads", 6)]
    assert problems[0].where == "signed head at audit entry 6"


def test_changing_a_byte_of_a_delivery_receipt_is_named(honest: Home) -> None:
    """One changed character in hdnd's stored receipt names that receipt and message."""
    store = honest.store()
    try:
        token = store.get_dispatch(honest.sent_message_id).deliveries[0].receipt
    finally:
        store.close()
    header, payload, signature = token.split(".")
    changed = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    tamper(honest, f"UPDATE deliveries SET receipt = '{header}.{changed}.{signature}'")
    problems = failure(honest).report.problems
    receipts = [p for p in problems if p.check == "receipts"]
    assert len(receipts) == 1 and honest.sent_message_id in receipts[0].where
    assert "receipt from hdnd" in receipts[0].where
    # the copy beside the document no longer matches the (tampered) store either
    assert any(p.check == "files" and "receipt copy" in p.what for p in problems)


def test_changing_a_byte_of_our_own_receipt_is_named(honest: Home) -> None:
    """Our receipt for a received document is checked with our own card's key."""
    store = honest.store()
    try:
        token = store.get_received(honest.peer.node_id, honest.received_message_id).receipt
    finally:
        store.close()
    tail = token[-2]
    forged = token[:-2] + ("A" if tail != "A" else "B") + token[-1]
    tamper(honest, f"UPDATE received SET receipt = '{forged}'")
    problems = [p for p in failure(honest).report.problems if p.check == "receipts"]
    assert len(problems) == 1 and honest.received_message_id in problems[0].where
    assert problems[0].where.startswith("our receipt to hdnd")


def test_altering_a_file_in_sent_is_named(honest: Home) -> None:
    """A kept document whose bytes changed is named by its path, with both digests."""
    honest.sent_file.write_bytes(SENT_TEXT.replace(b"45", b"46"))
    problems = failure(honest).report.problems
    assert [(p.check, p.path) for p in problems] == [("files", "sent/hdnd/Công văn 45.txt")]
    assert hashlib.sha256(SENT_TEXT).hexdigest() in problems[0].what


def test_altering_a_file_in_inbox_is_named(honest: Home) -> None:
    """The same holds for a document kept in inbox/."""
    honest.inbox_file.write_bytes(b"something else\n")
    problems = failure(honest).report.problems
    assert [(p.check, p.path) for p in problems] == [("files", "inbox/hdnd/Báo cáo kỳ họp 9.txt")]


def test_a_replaced_receipt_copy_beside_a_document_is_named(honest: Home) -> None:
    """A receipt file in sent/ that is not the stored receipt is reported."""
    copy = honest.sent_file.parent / "Công văn 45.txt.hdnd.receipt.jws"
    copy.write_text("not.a.receipt\n")
    problems = failure(honest).report.problems
    assert [(p.check, p.path) for p in problems] == [
        ("files", "sent/hdnd/Công văn 45.txt.hdnd.receipt.jws")]


def test_receipts_from_a_revoked_peer_still_verify_and_are_marked(honest: Home) -> None:
    """After revoking hdnd, its earlier receipt still verifies and verify notes the revocation."""
    store = honest.store()
    try:
        store.revoke_peer("hdnd", "key lost", T2)
    finally:
        store.close()
    report = honest.verify()
    assert report.problems == []
    marked = [note for note in report.notes if "revoked at" in note]
    assert len(marked) == 1 and "key lost" in marked[0] and "before the revocation" in marked[0]


# -- after an identity rotation --------------------------------------------------------------

T3 = "2026-11-25T09:00:00Z"
T4 = "2026-11-25T10:00:00Z"
WEEK = "2026-12-02T09:00:00Z"


def rotate_identity(home: Home, *, names: NodeKeys | None = None) -> NodeKeys:
    """Do on disk what the daemon does when it switches identity at T3: record the former
    identity with its continuation (naming ``names``, by default the new identity) and make
    the new card the node's own. Returns the new keys."""
    from lienthong.node.identity.history import record_identity_history
    from lienthong.node.identity.rotation import make_identity_rotation, successor_keys
    new = successor_keys(home.keys)
    named = names or new
    token = make_identity_rotation(home.keys, named,
                                   card_token=make_card(named, addresses=[], now=T3), now=T3)
    record_identity_history(home.home, home.keys, token, switched_at=T3, grace_until=WEEK)
    home.card = read_card(make_card(new, addresses=["127.0.0.1:7701"], now=T3))
    return new


def test_heads_of_a_former_identity_verify_and_each_signer_is_reported(honest: Home) -> None:
    """After a rotation, heads signed by the former identity (while it was current) and by
    the new one both verify; the report counts heads per identity, oldest first."""
    old = honest.keys
    new = rotate_identity(honest)
    store = honest.store()
    try:
        store.append_audit("identity-rotated", T3, detail={"new_node_id": new.node_id})
        sign_current_head(store, new, T4)
    finally:
        store.close()
    report = honest.verify()
    assert report.head_signers == {old.node_id: 1, new.node_id: 1}


def test_a_former_identity_whose_continuation_names_another_node_is_not_trusted(
        honest: Home) -> None:
    """A history entry whose continuation hands over to someone else than the next identity
    is named, and the heads it signed are then not trusted."""
    from lienthong.node.identity.rotation import successor_keys
    rotate_identity(honest, names=successor_keys(honest.keys))
    problems = failure(honest).report.problems
    assert problems[0].check == "identities" and "hands over to" in problems[0].what
    assert any(p.check == "heads" and "not this node's identity" in p.what for p in problems)


def test_a_head_signed_by_a_former_identity_after_the_switch_is_named(honest: Home) -> None:
    """A head the former identity signed after it stopped being current is refused."""
    old = honest.keys
    new = rotate_identity(honest)
    store = honest.store()
    try:
        store.append_audit("identity-rotated", T3, detail={"new_node_id": new.node_id})
        sign_current_head(store, old, T4)  # the old key, an hour after the switch
    finally:
        store.close()
    problems = failure(honest).report.problems
    assert [(p.check, "outside the period" in p.what) for p in problems] == [("heads", True)]


def test_a_recalled_document_is_named_as_recalled_and_checked_where_it_went(
        honest: Home) -> None:
    """Issue 20: a document the sender recalled is not "moved away by staff?": the note says
    it was recalled, and its digest is checked in recalled/ (a change there still fails)."""
    store = honest.store()
    try:
        sender = store.received_for_message(honest.received_message_id)[0].sender_node_id
        moved = honest.home / "recalled" / "hdnd" / honest.inbox_file.name
        moved.parent.mkdir(parents=True)
        honest.inbox_file.rename(moved)
        store.record_recall(NewRecall(
            message_id=honest.received_message_id, sender_node_id=sender, token="t",
            token_sha256="0" * 64, reason="sai sót", replaced_by=None, state="accepted",
            refusal=None, recalled_path=str(moved.relative_to(honest.home)), time=T2), T2)
        store.append_audit("node-stopped", T2)
    finally:
        store.close()
    report = honest.verify()
    assert report.missing_files == 0 and report.files == 2
    assert not any("staff" in note for note in report.notes)
    assert any("recalled by their sender" in note and "recalled/hdnd/" in note
               for note in report.notes)
    moved.write_bytes(b"changed")
    assert [p.check for p in failure(honest).report.problems] == ["files"]
