"""Key rotation without a network: new keys at rest, announcements and continuations, and
the directory changes a peer makes when it applies them."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.keys import jws
from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import Directory, Peer, PeerKey
from lienthong.keys.errors import BadBinding, DirectoryError, KeysError
from lienthong.keys.identity import generate_node_keys, rotate_tls_key
from lienthong.keys.keystore import load_keystore
from lienthong.node.identity.key_update_incoming import apply_key_announcement
from lienthong.node.identity.provision import create_node_home
from lienthong.node.identity.rotation import (
    Announcement,
    RotationError,
    key_announcement,
    make_identity_rotation,
    next_keystore,
    parse_announcement,
    previous_keystore,
    read_request,
    rotate,
    successor_keys,
    verify_identity_rotation,
    verify_key_announcement,
)
from lienthong.node.store.database import Store, open_store
from lienthong.node.store.records import StoreError
from tests.node.storehelp import make_dispatch

T0 = "2026-03-01T08:00:00Z"
T1 = "2026-03-02T08:00:00Z"
T2 = "2026-03-03T08:00:00Z"
WEEK = "2026-03-09T08:00:00Z"
PASSPHRASE = b"mat khau cua so tu phap"


@pytest.fixture
def home(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_node_home(tmp_path / "so-tu-phap", name="so-tu-phap", display_name=None,
                            listen="127.0.0.1:7701", advertise=None, passphrase=PASSPHRASE,
                            now=T0, kdf="minimal").config


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'peer.db'}")
    yield opened
    opened.close()


def enrol(store: Store, keys) -> None:  # type: ignore[no-untyped-def]
    card = read_card(make_card(keys, addresses=["127.0.0.1:7701"], now=T0))
    store.add_peer(Peer.from_card(card, now=T0), card.token, T0)


def announce(keys, seq: int = 2) -> Announcement:  # type: ignore[no-untyped-def]
    return parse_announcement(key_announcement(keys, card_text=None,
                                               addresses=["127.0.0.1:7701"], now=T1, seq=seq))


def new_keys(keys, peer_now: str = T1):  # type: ignore[no-untyped-def]
    card = verify_key_announcement(announce(keys), peer_of(keys)).card
    return [PeerKey("encryption", jws.b64url_encode(card.encryption_public), card.encryption_kid,
                    peer_now),
            PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], peer_now)], card


def peer_of(keys):  # type: ignore[no-untyped-def]
    return Peer.from_card(read_card(make_card(keys, addresses=[], now=T0)), now=T0)


# -- the rotating node --------------------------------------------------------------------------

def test_tls_and_encryption_rotation_saves_new_keys_keeps_old_ones_and_asks_the_daemon(
        home) -> None:  # type: ignore[no-untyped-def]
    """The keystore gets the new keys (old X25519 kept), the old file is kept byte for byte
    for the daemon, the card names the new keys and a request with the next seq is left."""
    old_bytes = home.keystore.path.read_bytes()
    old = load_keystore(home.keystore.path, PASSPHRASE)
    result = rotate(home, ("tls", "encryption"), PASSPHRASE, now=T1)
    new = load_keystore(home.keystore.path, PASSPHRASE)
    assert new.node_id == old.node_id
    assert new.tls_spki_sha256 != old.tls_spki_sha256 == result.tls_pins[0]
    assert [k.kid for k in new.encryption] == [old.current_encryption.kid,
                                               result.encryption_kids[1]]
    assert previous_keystore(home).read_bytes() == old_bytes
    assert previous_keystore(home).stat().st_mode & 0o777 == 0o600
    card = read_card(home.card_path.read_text())
    assert (card.tls_spki_sha256, card.encryption_kid) == (new.tls_spki_sha256,
                                                           new.current_encryption.kid)
    request = read_request(home.home)
    assert request is not None and request.kinds == ("tls", "encryption") and request.seq == 2


def test_second_tls_rotation_waits_for_the_first_unless_forced(home) -> None:  # type: ignore[no-untyped-def]
    """While the old TLS key is still needed, another TLS rotation is refused (or forced)."""
    rotate(home, ("tls",), PASSPHRASE, now=T1)
    with pytest.raises(RotationError, match="still being announced"):
        rotate(home, ("tls",), PASSPHRASE, now=T2)
    rotate(home, ("encryption",), PASSPHRASE, now=T2)  # another kind is fine
    assert read_request(home.home).kinds == ("tls", "encryption")
    rotate(home, ("tls",), PASSPHRASE, now=T2, force=True)
    assert read_request(home.home).seq == 4


def test_identity_rotation_writes_the_next_keystore_and_a_continuation(home) -> None:  # type: ignore[no-untyped-def]
    """An identity rotation leaves the live keystore alone; the continuation verifies under
    the old identity and names the new one, whose card keeps the same TLS and encryption keys."""
    before = home.keystore.path.read_bytes()
    old = load_keystore(home.keystore.path, PASSPHRASE)
    result = rotate(home, ("identity",), PASSPHRASE, now=T1)
    assert home.keystore.path.read_bytes() == before
    new = load_keystore(next_keystore(home), PASSPHRASE)
    assert new.node_id == result.new_node_id != old.node_id
    assert new.tls_spki_sha256 == old.tls_spki_sha256
    request = read_request(home.home)
    rotation = verify_identity_rotation(request.rotation, old.identity_public)
    assert (rotation.old_node_id, rotation.new_node_id) == (old.node_id, new.node_id)
    with pytest.raises(KeysError):
        verify_identity_rotation(request.rotation, new.identity_public)
    with pytest.raises(RotationError, match="identity rotation is still being announced"):
        rotate(home, ("tls",), PASSPHRASE, now=T2)


def test_continuation_must_name_the_card_it_carries() -> None:
    """A continuation whose card is for another key than the one it names is refused."""
    old = generate_node_keys("so-tu-phap", now=T0)
    new, other = successor_keys(old), successor_keys(old)
    token = make_identity_rotation(old, new, card_token=make_card(other, addresses=[], now=T1),
                                   now=T1)
    with pytest.raises(BadBinding, match="not for the new identity"):
        verify_identity_rotation(token, old.identity_public)


# -- announcements ------------------------------------------------------------------------------

def test_announcement_verifies_only_under_the_identity_we_trust() -> None:
    """A binding and card signed by the peer's identity pass; another node's are refused."""
    keys = generate_node_keys("so-tu-phap", now=T0)
    rotated = rotate_tls_key(keys)
    verified = verify_key_announcement(announce(rotated), peer_of(keys))
    assert verified.card.tls_spki_sha256 == rotated.tls_spki_sha256
    stranger = generate_node_keys("so-tu-phap", now=T0)
    with pytest.raises(KeysError):
        verify_key_announcement(announce(stranger), peer_of(keys))
    mixed = Announcement(binding=announce(rotated).binding, card=announce(keys).card)
    with pytest.raises(BadBinding, match="different keys"):
        verify_key_announcement(mixed, peer_of(keys))


@pytest.mark.parametrize("data", [b"not json", b'{"v":2,"rotation":"x"}',
                                  b'{"v":1,"binding":"a","card":"b","extra":1}', b"{}",
                                  b'{"v":1,"rotation":1}', b" " * 70000])
def test_malformed_announcements_are_refused(data: bytes) -> None:
    """Anything but a version 1 binding+card or continuation raises BadBinding."""
    with pytest.raises(BadBinding):
        parse_announcement(data)


# -- the peer's directory -----------------------------------------------------------------------

def test_applied_tls_key_overlaps_the_old_one_until_the_grace_ends(store: Store) -> None:
    """After an announcement both pins are accepted; re-applying changes nothing; when the
    grace period is over only the new pin is, and the history reads without an overlap."""
    keys = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, keys)
    rotated = rotate_tls_key(keys)
    applied, card = new_keys(rotated)
    store.apply_peer_keys(keys.node_id, applied, card.token, T1, tls_grace_until=WEEK)
    directory = store.directory()
    assert directory.node_for_tls_pin(keys.tls_spki_sha256) == keys.node_id
    assert directory.node_for_tls_pin(rotated.tls_spki_sha256) == keys.node_id
    version = store.directory_version()
    store.apply_peer_keys(keys.node_id, applied, card.token, T2, tls_grace_until=WEEK)
    assert store.directory_version() == version
    assert store.end_tls_grace(T2) == []
    assert store.end_tls_grace(WEEK) == [keys.node_id]
    directory = store.directory()
    assert directory.node_for_tls_pin(keys.tls_spki_sha256) is None
    assert directory.node_for_tls_pin(rotated.tls_spki_sha256) == keys.node_id
    tls = [k for k in store.key_history(keys.node_id) if k.kind == "tls"]
    assert [(k.value, k.valid_until) for k in tls] == [(keys.tls_spki_sha256, T1),
                                                       (rotated.tls_spki_sha256, None)]


def test_an_old_key_announced_again_is_refused(store: Store) -> None:
    """A replayed announcement cannot bring back a key the peer gave up."""
    keys = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, keys)
    original, card = new_keys(keys)  # the enrolment's keys, as an announcement would carry
    rotated = rotate_tls_key(keys)
    applied, new_card = new_keys(rotated)
    store.apply_peer_keys(keys.node_id, applied, new_card.token, T1)
    with pytest.raises(StoreError, match="old tls key"):
        store.apply_peer_keys(keys.node_id, original, card.token, T2)


def test_a_revoked_peer_gets_no_new_keys(store: Store) -> None:
    """Keys announced by a revoked peer are not applied."""
    keys = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, keys)
    store.revoke_peer("so-tu-phap", "máy bị mất", T1)
    applied, card = new_keys(rotate_tls_key(keys))
    with pytest.raises(StoreError, match="revoked"):
        store.apply_peer_keys(keys.node_id, applied, card.token, T2)


def continuation_keys(card, since: str) -> list[PeerKey]:  # type: ignore[no-untyped-def]
    """The three keys a continuation's card gives, as the store records them."""
    return [PeerKey("identity", jws.b64url_encode(card.identity_public), card.node_id, since),
            PeerKey("encryption", jws.b64url_encode(card.encryption_public),
                    card.encryption_kid, since),
            PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], since)]


def test_identity_continuation_rekeys_and_keeps_the_old_identity_for_old_receipts(
        store: Store) -> None:
    """The peer moves to its new node ID with its name; the old identity stays in both
    histories; deliveries queued for the old ID now wait under the new one (not failed)."""
    old = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, old)
    store.add_dispatch(make_dispatch(1, (old.node_id,)), T0)
    new = successor_keys(old)
    card = read_card(make_card(new, addresses=["127.0.0.1:7701"], now=T1))
    keys = continuation_keys(card, T1)
    record, moved = store.continue_peer_identity(old.node_id, keys, card.token, T1)
    assert record.peer.name == "so-tu-phap" and record.peer.node_id == new.node_id
    assert moved == 1
    (delivery,) = store.get_dispatch(f"{1:032x}").deliveries
    assert (delivery.state, delivery.peer_node_id) == ("queued", new.node_id)
    assert [row.message_id for row in store.queued_deliveries(new.node_id, 10)] == [f"{1:032x}"]
    assert store.queued_deliveries(old.node_id, 10) == []
    # A document sealed for the old node ID while the continuation was being applied is
    # queued under the new one too (the two transactions may commit in either order).
    late = store.add_dispatch(make_dispatch(2, (old.node_id,)), T1)
    assert [d.peer_node_id for d in late.deliveries] == [new.node_id]
    assert store.peer_by_node_id(old.node_id) is None
    assert store.get_peer("so-tu-phap").peer.node_id == new.node_id
    old_history = store.key_history(old.node_id)
    assert [k.kind for k in old_history] == ["identity", "encryption", "tls"]
    assert all(k.valid_until == T1 for k in old_history)
    directory: Directory = store.directory()
    assert bytes(directory.verify_key_for(new.node_id, kid=old.node_id)) == old.identity_public
    assert bytes(directory.verify_key_for(new.node_id)) == new.identity_public
    assert directory.node_for_tls_pin(old.tls_spki_sha256) == new.node_id  # same TLS key
    with pytest.raises(StoreError):
        store.continue_peer_identity(old.node_id, keys, card.token, T2)


def test_a_peer_announcing_another_peers_tls_key_changes_nothing(store: Store) -> None:
    """A card may carry any public certificate; a pin another peer holds is refused whole."""
    mallory = generate_node_keys("mallory", now=T0)
    victim = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, mallory)
    enrol(store, victim)
    forged = dataclasses.replace(rotate_tls_key(mallory), tls_key=victim.tls_key,
                                 tls_cert_der=victim.tls_cert_der)
    version = store.directory_version()
    with pytest.raises(DirectoryError, match="TLS"):
        apply_key_announcement(store, mallory.node_id, announce(forged), T1, WEEK)
    assert store.directory_version() == version
    assert store.directory().node_for_tls_pin(victim.tls_spki_sha256) == victim.node_id


def test_applying_an_announcement_records_the_keys_and_an_audit_entry(store: Store) -> None:
    """The database-thread unit verifies, applies and audits in one transaction."""
    keys = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, keys)
    rotated = rotate_tls_key(keys)
    apply_key_announcement(store, keys.node_id, announce(rotated), T1, WEEK)
    assert store.peer_by_node_id(keys.node_id).peer.current("tls").value == \
        rotated.tls_spki_sha256
    (entry,) = [e for e in store.audit_entries() if e.kind == "peer-keys-updated"]
    assert entry.detail["keys"] == {"tls": rotated.tls_spki_sha256[:16]}
    assert entry.detail["tls_grace_until"] == WEEK


def test_documents_from_before_a_peer_rotation_still_show_its_name_and_statuses(
        store: Store, tmp_path: Path) -> None:
    """A document delivered to a peer's former identity stays under that node ID (its receipt
    was signed by it); a processing status the office signs after its rotation names the new
    one. Status, track and audit filters still join them as one office."""
    from lienthong.node.cli.audit import peer_names, resolve_peers
    from lienthong.node.control.lifecycle import lifecycle
    from lienthong.node.status.snapshot import build_snapshot
    from lienthong.node.store.records import NewStatus
    old = generate_node_keys("so-tu-phap", now=T0)
    enrol(store, old)
    mid = f"{1:032x}"
    store.add_dispatch(make_dispatch(1, (old.node_id,)), T0)
    store.record_receipt(mid, old.node_id, "r.e.s", T0)
    store.append_audit("receipt-verified", T0, peer=old.node_id, message_id=mid)
    new = successor_keys(old)
    card = read_card(make_card(new, addresses=["127.0.0.1:7701"], now=T1))
    keys = continuation_keys(card, T1)
    store.continue_peer_identity(old.node_id, keys, card.token, T1)
    store.record_status(NewStatus(
        message_id=mid, peer_node_id=new.node_id, sender_node_id="X" * 63,
        status="registered", note="", register_number="15/ĐẾN", token="s.t.u",
        token_sha256="ab" * 32, receipt_sha256=None, time=T2), T2)

    snap = build_snapshot(store, node={"name": "me", "node_id": "ME"}, home=tmp_path,
                          now=1.8e9, daemon={"running": False, "note": ""})
    (recipient,) = snap["recent_sent"][0]["recipients"]
    assert (recipient["peer"], recipient["node_id"]) == ("so-tu-phap", old.node_id)
    assert recipient["processing"] == "registered"
    story = lifecycle(store, mid)
    assert story["recipients"][0]["office"] == "so-tu-phap"
    assert [s["status"] for s in story["recipients"][0]["statuses"]] == ["registered"]
    names = peer_names(store)
    assert names[old.node_id] == names[new.node_id] == "so-tu-phap"
    assert set(resolve_peers(names, ("so-tu-phap",))) == {old.node_id, new.node_id}
    found = store.audit_search(peers=resolve_peers(names, ("so-tu-phap",)))
    assert [e.kind for e in found if e.message_id == mid] == ["receipt-verified"]
