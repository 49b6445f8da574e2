"""The store round-trips every record, keeps its state machines, and commits atomically."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from lienthong.keys.directory import Directory
from lienthong.keys.errors import InvalidValue
from lienthong.node.store.audit_chain import GENESIS_HASH, ChainBroken, SignedHead, verify_chain
from lienthong.node.store.audit_log import AuditEvent
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import (
    PRIORITY_FLASH,
    PRIORITY_URGENT,
    Conflict,
    DuplicateMessage,
    DuplicatePeer,
    InvalidTransition,
    NotFound,
    ReceiptMismatch,
    StoreError,
)
from tests.node.storehelp import (
    T0,
    T1,
    T2,
    T3,
    encryption_key,
    make_dispatch,
    make_peer,
    make_received,
    raw_sql,
)

ALICE = make_peer("so-tu-phap", 1)
BOB = make_peer("so-tai-chinh", 2)


# -- peers ---------------------------------------------------------------------------------------

def test_peer_round_trip_with_keys_card_and_directory(store: Store) -> None:
    """A peer comes back equal, with its card and enrolment time, and builds a Directory."""
    record = store.add_peer(ALICE, "card.alice", T0)
    store.add_peer(BOB, "card.bob", T1)
    listed = store.list_peers()
    assert [r.peer.name for r in listed] == ["so-tai-chinh", "so-tu-phap"]
    assert store.get_peer("so-tu-phap") == record
    assert record.peer == ALICE and record.card == "card.alice" and record.added_at == T0
    assert store.peer_by_node_id(BOB.node_id).peer == BOB  # type: ignore[union-attr]
    assert store.get_peer("nobody") is None
    directory = store.directory()
    assert isinstance(directory, Directory)
    assert directory.peer_with_id(ALICE.node_id).name == "so-tu-phap"


def test_duplicate_peer_name_or_node_id_is_refused_clearly(store: Store) -> None:
    """Same name, or same node ID under another name, raises DuplicatePeer saying which."""
    store.add_peer(ALICE, "card", T0)
    with pytest.raises(DuplicatePeer, match="a peer named 'so-tu-phap' is already"):
        store.add_peer(make_peer("so-tu-phap", 9), "card", T1)
    with pytest.raises(DuplicatePeer, match=f"node ID {ALICE.node_id} is already.*so-tu-phap"):
        store.add_peer(make_peer("ubnd-tinh", 1), "card", T1)
    assert len(store.list_peers()) == 1


def test_every_directory_change_bumps_the_version_seen_by_other_processes(
        store: Store, store_url: str) -> None:
    """add, addresses, card, key, revoke, remove each bump the counter a second engine reads."""
    other = open_store(store_url)  # as the CLI would, in another process
    try:
        seen = [other.directory_version()]
        store.add_peer(ALICE, "card", T0)
        seen.append(other.directory_version())
        store.update_peer_addresses("so-tu-phap", ["10.0.0.5:7443", "[2001:db8::1]:7443"], T1)
        seen.append(other.directory_version())
        store.update_peer_card("so-tu-phap", "card-2", T1)
        seen.append(other.directory_version())
        store.add_peer_key(ALICE.node_id, encryption_key(50, T2))
        seen.append(other.directory_version())
        store.revoke_peer("so-tu-phap", "key lost", T3)
        seen.append(other.directory_version())
        store.remove_peer("so-tu-phap", T3)
        seen.append(other.directory_version())
    finally:
        other.close()
    assert seen == [0, 1, 2, 3, 4, 5, 6]


def test_addresses_are_validated_and_stored(store: Store) -> None:
    """New addresses round-trip; a malformed one is refused and nothing changes."""
    store.add_peer(ALICE, "card", T0)
    updated = store.update_peer_addresses("so-tu-phap", ["10.0.0.5:7443"], T1)
    assert updated.peer.addresses == ("10.0.0.5:7443",)
    with pytest.raises(InvalidValue):
        store.update_peer_addresses("so-tu-phap", ["no port here"], T1)
    assert store.get_peer("so-tu-phap").peer.addresses == ("10.0.0.5:7443",)  # type: ignore[union-attr]


def test_key_rotation_closes_the_old_key_and_keeps_history(store: Store) -> None:
    """A new encryption key closes the previous one at its start; both stay in the history."""
    store.add_peer(ALICE, "card", T0)
    new_key = encryption_key(60, T2)
    rotated = store.add_peer_key(ALICE.node_id, new_key)
    assert rotated.peer.current("encryption") == new_key
    assert store.get_peer("so-tu-phap") == rotated
    history = [k for k in store.key_history(ALICE.node_id) if k.kind == "encryption"]
    assert [(k.kid, k.valid_until) for k in history] == [
        (ALICE.current("encryption").kid, T2), (new_key.kid, None)]
    version = store.directory_version()
    assert store.add_peer_key(ALICE.node_id, new_key) == rotated  # same key again: no-op
    assert store.directory_version() == version


def test_identity_rotation_and_unknown_peers_are_refused(store: Store) -> None:
    """A new identity key needs re-enrolment; changing an unknown peer raises NotFound."""
    store.add_peer(ALICE, "card", T0)
    with pytest.raises(StoreError, match="new node ID"):
        store.add_peer_key(ALICE.node_id, BOB.current("identity"))
    with pytest.raises(NotFound):
        store.add_peer_key(BOB.node_id, encryption_key(70, T1))
    with pytest.raises(NotFound):
        store.revoke_peer("nobody", "x", T1)
    with pytest.raises(NotFound):
        store.remove_peer("nobody", T1)


def test_revocation_is_recorded_once(store: Store) -> None:
    """Revoking marks the peer revoked with time and reason; revoking again keeps the first."""
    store.add_peer(ALICE, "card", T0)
    first = store.revoke_peer("so-tu-phap", "khóa bị lộ", T1)
    again = store.revoke_peer("so-tu-phap", "other reason", T2)
    assert first.peer.state == "revoked"
    assert (again.peer.revoked_at, again.peer.reason) == (T1, "khóa bị lộ")
    assert store.get_peer("so-tu-phap") == first


def test_removed_peer_keeps_key_history_and_can_be_enrolled_again(store: Store) -> None:
    """Removal closes the keys but keeps them; a later enrolment sees only its own keys."""
    store.add_peer(ALICE, "card", T0)
    store.remove_peer("so-tu-phap", T1)
    assert store.list_peers() == []
    assert all(k.valid_until == T1 for k in store.key_history(ALICE.node_id))
    again = make_peer("so-tu-phap", 1, since=T2)
    store.add_peer(again, "card-2", T2)
    assert store.get_peer("so-tu-phap").peer == again  # type: ignore[union-attr]
    assert len(store.key_history(ALICE.node_id)) == 6
    assert store.directory().peer_named("so-tu-phap").node_id == ALICE.node_id


# -- outgoing ------------------------------------------------------------------------------------

def test_dispatch_round_trip(store: Store) -> None:
    """add_dispatch returns what get_dispatch reads back: fields, meta and queued deliveries."""
    added = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0)
    assert store.get_dispatch(added.message_id) == added
    assert added.state == "sending" and added.meta == {"urgency": "normal", "số": 1}
    assert {d.peer_node_id: d.state for d in added.deliveries} == {
        ALICE.node_id: "queued", BOB.node_id: "queued"}
    assert store.get_dispatch("f" * 32) is None


def test_a_streamed_seal_gets_its_digest_once_and_only_that_one(store: Store) -> None:
    """A dispatch recorded before its document was read has no digest; the one its trailer
    signs is recorded once (again: no change), another one is refused and changes nothing."""
    waiting = dataclasses.replace(make_dispatch(1, (ALICE.node_id,)), sha256=None)
    added = store.add_dispatch(waiting, T0)
    assert added.sha256 is None and store.get_dispatch(added.message_id).sha256 is None
    assert [q.sha256 for q in store.queued_deliveries(ALICE.node_id, 5)] == [None]
    digest = "ab" * 32
    assert store.record_digest(added.message_id, digest) is True
    assert store.record_digest(added.message_id, digest) is False
    with pytest.raises(ReceiptMismatch, match="was recorded with SHA-256"):
        store.record_digest(added.message_id, "cd" * 32)
    with pytest.raises(NotFound):
        store.record_digest("f" * 32, digest)
    assert store.get_dispatch(added.message_id).sha256 == digest


def test_duplicate_dispatch_and_bad_batches_are_refused_whole(store: Store) -> None:
    """A known message ID, or one repeated in a batch, refuses the whole batch."""
    store.add_dispatch(make_dispatch(1, (ALICE.node_id,)), T0)
    with pytest.raises(DuplicateMessage, match=f"{1:032x}"):
        store.add_dispatches([make_dispatch(2, (ALICE.node_id,)),
                              make_dispatch(1, (ALICE.node_id,))], T1)
    with pytest.raises(DuplicateMessage):
        store.add_dispatches([make_dispatch(3, (ALICE.node_id,))] * 2, T1)
    assert store.get_dispatch(f"{2:032x}") is None
    assert store.dispatches_by_state() == {"sending": 1, "sent": 0, "failed": 0}


def test_new_dispatch_values_are_validated() -> None:
    """Bad message IDs, priorities, digests or empty recipient lists never reach the store."""
    with pytest.raises(ValueError):
        make_dispatch(1, ())
    with pytest.raises(ValueError):
        make_dispatch(1, (ALICE.node_id,), priority=7)
    good = make_dispatch(1, (ALICE.node_id,))
    with pytest.raises(ValueError, match="message ID"):
        dataclasses.replace(good, message_id="NOT-HEX")
    with pytest.raises(ValueError, match="SHA-256"):
        dataclasses.replace(good, sha256="abc")


def test_queue_order_is_priority_then_oldest_first(store: Store) -> None:
    """Flash goes first, then urgent, then normal; within a priority, in the order taken."""
    store.add_dispatch(make_dispatch(1, (ALICE.node_id,)), T0)
    store.add_dispatch(make_dispatch(2, (ALICE.node_id,), PRIORITY_URGENT), T1)
    store.add_dispatches([make_dispatch(3, (ALICE.node_id,), PRIORITY_FLASH),
                          make_dispatch(4, (ALICE.node_id, BOB.node_id))], T1)
    store.add_dispatch(make_dispatch(5, (ALICE.node_id,), PRIORITY_FLASH), T0)  # clock stepped back
    order = [q.message_id for q in store.queued_deliveries(ALICE.node_id, 10)]
    assert order == [f"{n:032x}" for n in (3, 5, 2, 1, 4)]
    assert [q.message_id for q in store.queued_deliveries(ALICE.node_id, 2)] == order[:2]
    first = store.queued_deliveries(ALICE.node_id, 1)[0]
    assert (first.spool_dir, first.priority, first.ciphertext_size) == (
        f"spool/{3:032x}", PRIORITY_FLASH, 1103)
    assert store.queue_depths() == {ALICE.node_id: 5, BOB.node_id: 1}
    # The link's documents already offered are left out, and still count against the limit.
    skipped = store.queued_deliveries(ALICE.node_id, 3, skip={order[0], order[2]})
    assert [q.message_id for q in skipped] == [order[1]]


def test_offer_progress_and_errors_are_recorded(store: Store) -> None:
    """Attempts count up, bytes sent and the last error are kept; unknown deliveries raise."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id,)), T0).message_id
    store.record_offer(message_id, ALICE.node_id, T1)
    store.record_offer(message_id, ALICE.node_id, T2)
    store.record_progress(message_id, ALICE.node_id, 4096)
    store.record_delivery_error(message_id, ALICE.node_id, "connection lost")
    delivery = store.get_dispatch(message_id).deliveries[0]  # type: ignore[union-attr]
    assert (delivery.attempts, delivery.offered_at, delivery.bytes_sent, delivery.last_error,
            delivery.state) == (2, T2, 4096, "connection lost", "queued")
    with pytest.raises(NotFound):
        store.record_progress(message_id, BOB.node_id, 1)


def test_transfer_notes_are_recorded_together_or_not_at_all(store: Store) -> None:
    """``record_transfers`` (a link's notes in one statement per kind) records what
    ``record_offer`` and ``record_progress`` would; a note naming a missing delivery raises
    NotFound and, in the caller's savepoint, none of the unit is kept."""
    first = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0).message_id
    second = store.add_dispatch(make_dispatch(2, (ALICE.node_id,)), T0).message_id
    store.record_transfers([(first, ALICE.node_id, T1), (first, BOB.node_id, T1),
                            (second, ALICE.node_id, T2), (first, ALICE.node_id, T2)],
                           [(first, ALICE.node_id, 4096), (second, ALICE.node_id, 10)])
    rows = {m: store.get_dispatch(m) for m in (first, second)}
    seen = {(m, d.peer_node_id): (d.attempts, d.offered_at, d.bytes_sent)
            for m, row in rows.items() for d in row.deliveries}  # type: ignore[union-attr]
    assert seen == {(first, ALICE.node_id): (2, T2, 4096), (first, BOB.node_id): (1, T1, 0),
                    (second, ALICE.node_id): (1, T2, 10)}
    with pytest.raises(NotFound), store.transaction(), store.savepoint():
        store.record_transfers([(second, ALICE.node_id, T3), (second, BOB.node_id, T3)], [])
    assert store.get_dispatch(second).deliveries[0].attempts == 1  # type: ignore[union-attr]


def test_receipts_are_idempotent_and_all_delivered_only_at_the_last(store: Store) -> None:
    """all_delivered is False until every recipient receipted; repeats answer the same."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0).message_id
    assert store.record_receipt(message_id, ALICE.node_id, "receipt-a", T1) is False
    assert store.record_receipt(message_id, ALICE.node_id, "receipt-a", T2) is False
    assert store.record_receipt(message_id, BOB.node_id, "receipt-b", T2) is True
    assert store.record_receipt(message_id, BOB.node_id, "receipt-b", T3) is True
    with pytest.raises(ReceiptMismatch):
        store.record_receipt(message_id, BOB.node_id, "another-receipt", T3)
    deliveries = {d.peer_node_id: d for d in store.get_dispatch(message_id).deliveries}  # type: ignore[union-attr]
    assert (deliveries[ALICE.node_id].receipt, deliveries[ALICE.node_id].receipt_at) == (
        "receipt-a", T1)
    assert deliveries[BOB.node_id].state == "delivered"
    assert store.queue_depths() == {}
    with pytest.raises(NotFound):
        store.record_receipt("e" * 32, ALICE.node_id, "r", T1)


def test_only_receipts_make_a_dispatch_sent(store: Store) -> None:
    """mark_dispatch_sent waits for every receipt, then is final and idempotent."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0).message_id
    store.record_receipt(message_id, ALICE.node_id, "receipt-a", T1)
    with pytest.raises(InvalidTransition, match="1 receipt"):
        store.mark_dispatch_sent(message_id, "sent/so-tu-phap/x.pdf", T1)
    store.record_receipt(message_id, BOB.node_id, "receipt-b", T2)
    store.mark_dispatch_sent(message_id, "sent/so-tu-phap/x.pdf", T2)
    store.mark_dispatch_sent(message_id, "sent/so-tu-phap/x.pdf", T3)
    row = store.get_dispatch(message_id)
    assert (row.state, row.sent_path, row.finished_at) == (  # type: ignore[union-attr]
        "sent", "sent/so-tu-phap/x.pdf", T2)
    assert store.spool_message_ids() == set()
    with pytest.raises(InvalidTransition):
        store.fail_dispatch(message_id, "too late", T3)


def test_failing_a_dispatch_fails_its_queued_deliveries_only(store: Store) -> None:
    """fail_dispatch keeps delivered receipts and marks the still-queued deliveries failed."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0).message_id
    store.add_dispatch(make_dispatch(2, (ALICE.node_id,)), T0)
    store.record_receipt(message_id, ALICE.node_id, "receipt-a", T1)
    store.fail_dispatch(message_id, "peer revoked", T2)
    row = store.get_dispatch(message_id)
    assert (row.state, row.error) == ("failed", "peer revoked")  # type: ignore[union-attr]
    states = {d.peer_node_id: (d.state, d.last_error) for d in row.deliveries}  # type: ignore[union-attr]
    assert states == {ALICE.node_id: ("delivered", None), BOB.node_id: ("failed", "peer revoked")}
    assert store.spool_message_ids() == {f"{2:032x}"}
    assert store.dispatches_by_state() == {"sending": 1, "sent": 0, "failed": 1}
    with pytest.raises(InvalidTransition):
        store.mark_dispatch_sent(message_id, "sent/x", T3)


def test_a_delivered_document_cannot_be_failed(store: Store) -> None:
    """fail_delivery after a receipt raises; before it, the delivery leaves the queue."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id, BOB.node_id)), T0).message_id
    store.record_receipt(message_id, ALICE.node_id, "receipt-a", T1)
    with pytest.raises(InvalidTransition, match="'delivered'"):
        store.fail_delivery(message_id, ALICE.node_id, "nope", T2)
    store.fail_delivery(message_id, BOB.node_id, "revoked", T2)
    assert store.queued_deliveries(BOB.node_id, 10) == []


def test_recent_dispatches_are_newest_first(store: Store) -> None:
    """recent_dispatches lists the last documents taken, newest first, limited."""
    for number in range(1, 5):
        store.add_dispatch(make_dispatch(number, (ALICE.node_id,)), T0)
    assert [d.message_id for d in store.recent_dispatches(2)] == [f"{4:032x}", f"{3:032x}"]


# -- schedule ------------------------------------------------------------------------------------

def test_schedule_counts_failures_and_resets_on_connect(store: Store) -> None:
    """Failures accumulate with the caller's next attempt time; connecting resets them."""
    assert store.schedule_for(ALICE.node_id).failures == 0
    store.record_connect_failure(ALICE.node_id, "refused", 1000.5, T0)
    row = store.record_connect_failure(ALICE.node_id, "timeout", 1002.5, T1)
    assert (row.failures, row.next_attempt_at, row.last_error) == (2, 1002.5, "timeout")
    assert store.schedule_for(ALICE.node_id) == row
    connected = store.record_connected(ALICE.node_id, T2)
    assert (connected.failures, connected.next_attempt_at, connected.last_error,
            connected.last_connected_at) == (0, 0.0, None, T2)
    seen = store.record_seen(BOB.node_id, T3)
    assert (seen.failures, seen.last_seen_at) == (0, T3)
    assert [s.node_id for s in store.schedules()] == sorted([ALICE.node_id, BOB.node_id])


# -- incoming ------------------------------------------------------------------------------------

def test_publish_goes_publishing_then_stored_once(store: Store) -> None:
    """begin/complete publish; a repeat complete is a no-op; a duplicate begin is refused."""
    item = make_received(1, ALICE.node_id)
    begun = store.begin_publish(item, T0)
    assert begun.state == "publishing" and begun.receipt is None and begun.received_at == T0
    assert store.publishing_rows() == [begun]
    assert store.received_count() == 0
    stored = store.complete_publish(ALICE.node_id, item.message_id, "receipt-1", T1)
    assert (stored.state, stored.receipt, stored.meta) == (
        "stored", "receipt-1", {"confidentiality": "confidential"})
    assert store.get_received(ALICE.node_id, item.message_id) == stored
    assert store.complete_publish(ALICE.node_id, item.message_id, "receipt-1", T2) == stored
    with pytest.raises(ReceiptMismatch):
        store.complete_publish(ALICE.node_id, item.message_id, "receipt-2", T2)
    with pytest.raises(DuplicateMessage):
        store.begin_publish(item, T2)
    assert store.publishing_rows() == [] and store.received_count() == 1
    assert store.get_received(BOB.node_id, item.message_id) is None  # keyed on the sender too


def test_abandoned_publish_can_start_over_but_stored_is_never_forgotten(store: Store) -> None:
    """abandon_publish forgets a publishing row only; a stored one refuses."""
    item = make_received(1, ALICE.node_id)
    store.begin_publish(item, T0)
    store.abandon_publish(ALICE.node_id, item.message_id, T1)
    assert store.get_received(ALICE.node_id, item.message_id) is None
    store.begin_publish(item, T1)
    store.complete_publish(ALICE.node_id, item.message_id, "receipt", T2)
    with pytest.raises(InvalidTransition):
        store.abandon_publish(ALICE.node_id, item.message_id, T3)
    with pytest.raises(NotFound):
        store.complete_publish(BOB.node_id, item.message_id, "receipt", T3)


def test_recent_received_is_newest_first(store: Store) -> None:
    """recent_received orders by reception time, newest first."""
    store.begin_publish(make_received(1, ALICE.node_id), T0)
    store.begin_publish(make_received(2, BOB.node_id), T2)
    store.begin_publish(make_received(3, ALICE.node_id), T1)
    assert [r.message_id[-1] for r in store.recent_received(5)] == ["2", "3", "1"]


# -- audit ---------------------------------------------------------------------------------------

def test_audit_chain_appends_and_verifies(store: Store) -> None:
    """Entries chain from 64 zeros, filter by kind/peer/message, and verify end to end."""
    first = store.append_audit("taken", T0, message_id="a" * 32, detail={"name": "Tờ trình.pdf"})
    store.append_audit("sent", T1, peer="so-tu-phap", message_id="a" * 32, digest="d" * 64)
    store.append_audit("peer-added", T2, peer="so-tai-chinh")
    assert first.prev_hash == GENESIS_HASH and first.seq == 1
    entries = store.audit_entries()
    assert [e.seq for e in entries] == [1, 2, 3] and entries[0] == first
    assert verify_chain(entries) == store.audit_tip() == (3, entries[-1].hash)
    assert [e.seq for e in store.audit_entries(message_id="a" * 32)] == [1, 2]
    assert [e.seq for e in store.audit_entries(peer="so-tai-chinh")] == [3]
    assert [e.seq for e in store.audit_entries(kind="sent")] == [2]
    assert [e.seq for e in store.audit_entries(after_seq=1, limit=1)] == [2]
    assert entries[0].detail == {"name": "Tờ trình.pdf"}


def test_append_audits_writes_the_entries_append_audit_would_in_one_insert(
        store: Store, new_store_url) -> None:  # type: ignore[no-untyped-def]
    """A batch of events appended at once, inside a transaction after a single append,
    chains exactly as the same events appended one by one (same seqs, hashes, details); a
    bad event refuses the whole batch before anything is written."""
    events = [AuditEvent("taken", T0, message_id="a" * 32, detail={"name": "Tờ trình.pdf"}),
              AuditEvent("sent", T1, peer="so-tu-phap", message_id="a" * 32,
                         digest="d" * 64, detail={"bytes": 7}),
              AuditEvent("peer-added", T2, peer="so-tai-chinh")]
    other = open_store(new_store_url())
    try:
        with store.transaction():
            store.append_audit("node-started", T0, detail={"n": 0})
            batch = store.append_audits(events)
        other.append_audit("node-started", T0, detail={"n": 0})
        alone = [other.append_audit(e.kind, e.time, peer=e.peer, message_id=e.message_id,
                                    digest=e.digest, detail=e.detail) for e in events]
        assert batch == alone and [e.seq for e in batch] == [2, 3, 4]
        assert store.audit_entries() == other.audit_entries()
        assert verify_chain(store.audit_entries()) == store.audit_tip() == (4, batch[-1].hash)
    finally:
        other.close()
    with pytest.raises(ValueError):
        store.append_audits([AuditEvent("received", T3), AuditEvent("", T3)])
    assert store.audit_tip()[0] == 4 and store.append_audits([]) == []


def tamper(store_url: str, sql: str) -> None:
    raw_sql(store_url, sql)


def three_entries(store: Store) -> None:
    for index, when in enumerate((T0, T1, T2, T3)):
        store.append_audit("received", when, peer="so-tu-phap", detail={"n": index})


def test_editing_a_stored_audit_row_is_named(store: Store, store_url: str) -> None:
    """Changing entry 2's detail in the database is reported at seq 2."""
    three_entries(store)
    tamper(store_url, "UPDATE audit SET detail = '{\"n\":99}' WHERE seq = 2")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(store.audit_entries())
    assert caught.value.seq == 2


def test_deleting_a_stored_audit_row_is_named(store: Store, store_url: str) -> None:
    """Deleting entry 2 from the database is reported at seq 3 as a missing entry 2."""
    three_entries(store)
    tamper(store_url, "DELETE FROM audit WHERE seq = 2")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(store.audit_entries())
    assert caught.value.seq == 3 and "entry 2 is missing" in caught.value.why


def test_reordering_stored_audit_rows_is_named(store: Store, store_url: str) -> None:
    """Swapping the seq numbers of entries 2 and 3 in the database is reported at seq 2."""
    three_entries(store)
    tamper(store_url, "UPDATE audit SET seq = -3 WHERE seq = 3")
    tamper(store_url, "UPDATE audit SET seq = 3 WHERE seq = 2")
    tamper(store_url, "UPDATE audit SET seq = 2 WHERE seq = -3")
    with pytest.raises(ChainBroken) as caught:
        verify_chain(store.audit_entries())
    assert caught.value.seq == 2


def test_audit_heads_must_match_the_log(store: Store) -> None:
    """A head is kept once, only for the hash really at that seq, and is checked by verify."""
    three_entries(store)
    seq, tip = store.audit_tip()
    with pytest.raises(Conflict):
        store.record_audit_head(seq, "0" * 64, "sig", T3)
    with pytest.raises(NotFound):
        store.record_audit_head(seq + 5, tip, "sig", T3)
    assert store.record_audit_head(seq, tip, "jws.head.sig", T3) is True
    assert store.record_audit_head(seq, tip, "jws.head.sig", T3) is False
    heads = store.audit_heads()
    assert [(h.seq, h.hash, h.signature) for h in heads] == [(seq, tip, "jws.head.sig")]
    signed = [SignedHead(h.seq, h.hash, h.time) for h in heads]
    assert verify_chain(store.audit_entries(), heads=signed) == (seq, tip)


def test_state_change_and_audit_commit_together_or_not_at_all(store: Store) -> None:
    """Inside transaction(), an error after a receipt and its audit entry rolls back both."""
    message_id = store.add_dispatch(make_dispatch(1, (ALICE.node_id,)), T0).message_id
    with pytest.raises(RuntimeError), store.transaction():
        assert store.record_receipt(message_id, ALICE.node_id, "receipt", T1) is True
        store.append_audit("receipt-verified", T1, message_id=message_id)
        store.mark_dispatch_sent(message_id, "sent/x.pdf", T1)
        raise RuntimeError("crash before commit")
    assert store.audit_entries() == []
    assert store.get_dispatch(message_id).state == "sending"  # type: ignore[union-attr]
    with store.transaction():
        store.record_receipt(message_id, ALICE.node_id, "receipt", T1)
        store.append_audit("receipt-verified", T1, message_id=message_id)
        store.mark_dispatch_sent(message_id, "sent/x.pdf", T1)
    assert store.get_dispatch(message_id).state == "sent"  # type: ignore[union-attr]
    assert [e.kind for e in store.audit_entries()] == ["receipt-verified"]


def test_times_and_audit_keys_are_checked(store: Store) -> None:
    """A bad 'now' or an unvalidated search key is refused before anything is written."""
    with pytest.raises(InvalidValue):
        store.append_audit("taken", "yesterday")
    with pytest.raises(ValueError, match="message ID"):
        store.append_audit("rejected", T0, message_id="../../etc/passwd")
    with pytest.raises(ValueError, match="kind"):
        store.append_audit("", T0)
    assert store.audit_entries() == []


def test_removing_a_peer_after_the_clock_stepped_back_keeps_history_readable(
        store: Store) -> None:
    """Keys are never closed before they started, so key_history still loads."""
    late = make_peer("so-tu-phap", 1, since=T3)
    store.add_peer(late, "card", T3)
    store.remove_peer("so-tu-phap", T0)
    history = store.key_history(late.node_id)
    assert [k.valid_until for k in history] == [T3, T3, T3]


def test_two_processes_appending_at_once_never_fork_the_chain(store: Store,
                                                              store_url: str) -> None:
    """Two engines on one file (daemon and CLI) appending concurrently: one intact chain."""
    other = open_store(store_url)
    errors: list[BaseException] = []

    def append_many(target: Store, who: str) -> None:
        try:
            for index in range(40):
                target.append_audit("cli" if who == "cli" else "daemon", T0,
                                    detail={"who": who, "n": index})
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=append_many, args=(store, "daemon")),
               threading.Thread(target=append_many, args=(other, "cli"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    other.close()
    assert errors == []
    entries = store.audit_entries()
    assert len(entries) == 80
    assert verify_chain(entries) == store.audit_tip()


def test_re_enrolment_after_the_clock_stepped_back_still_builds_a_directory(
        store: Store) -> None:
    """Removed at T3, re-added at T1: the same keys are not counted twice."""
    store.add_peer(ALICE, "card", T0)
    store.remove_peer("so-tu-phap", T3)
    store.add_peer(make_peer("so-tu-phap", 1, since=T1), "card", T1)
    peer = store.directory().peer_named("so-tu-phap")
    assert sorted(k.kind for k in peer.keys) == ["encryption", "identity", "tls"]
    assert all(k.is_current for k in peer.keys)


def test_a_failed_savepoint_undoes_only_its_part_and_keeps_the_chain(store: Store) -> None:
    """``Store.savepoint``: a failing part of a transaction is undone alone (its audit entry
    too: the chain's cached tip is forgotten), the rest commits, and the chain stays whole."""
    with store.transaction():
        store.append_audit("first", T0, detail={})
        with pytest.raises(RuntimeError), store.savepoint():
            store.add_peer(ALICE, "card.alice", T0)
            store.append_audit("undone", T0, detail={})
            raise RuntimeError("this part fails")
        with store.savepoint():
            store.add_peer(BOB, "card.bob", T1)
        store.append_audit("last", T1, detail={})
    assert [p.peer.node_id for p in store.list_peers()] == [BOB.node_id]
    entries = store.audit_entries()
    kinds = [e.kind for e in entries]
    assert "undone" not in kinds and kinds.index("first") < kinds.index("last")
    assert verify_chain(entries)[0] == entries[-1].seq
    with pytest.raises(StoreError):  # only inside a transaction
        with store.savepoint():
            pass
