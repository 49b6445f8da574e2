"""The peer directory model: key history, trust state and the node's lookups."""
import dataclasses
import hashlib

import nacl.public
import nacl.signing
import pytest

from lienthong.keys import jws, tls
from lienthong.keys.card import make_card, read_card
from lienthong.keys.directory import Directory, Peer, PeerKey
from lienthong.keys.errors import DirectoryError, InvalidValue, UnknownPeer
from lienthong.keys.identity import generate_node_keys, rotate_encryption_key, rotate_tls_key

T0 = "2025-01-01T00:00:00Z"
T1 = "2025-06-01T00:00:00Z"
T2 = "2026-01-01T00:00:00Z"


def _rng(seed: bytes):
    """Deterministic random_bytes for reproducible keys."""
    counter = iter(range(10 ** 9))
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


def _node(name):
    return generate_node_keys(name, now=T0, random_bytes=_rng(name.encode()))


def _peer(keys, now=T0):
    return Peer.from_card(read_card(make_card(keys, addresses=[f"{keys.name}.vn:7443"], now=now)),
                          now=now)


@pytest.fixture(scope="module")
def nodes():
    return {name: _node(name) for name in ("so-tu-phap", "so-tai-chinh", "ubnd-tinh")}


@pytest.fixture()
def directory(nodes):
    return Directory([_peer(keys) for keys in nodes.values()])


def test_from_card(nodes):
    """A card becomes a trusted peer with one current key of each kind, valid from now."""
    keys = nodes["so-tu-phap"]
    peer = _peer(keys)
    assert (peer.name, peer.node_id, peer.state) == ("so-tu-phap", keys.node_id, "trusted")
    assert peer.addresses == ("so-tu-phap.vn:7443",)
    assert peer.current("identity").value == jws.b64url_encode(keys.identity_public)
    assert peer.current("identity").kid == keys.node_id
    assert peer.current("encryption").kid == keys.current_encryption.kid
    assert peer.current("tls").value == keys.tls_spki_sha256
    assert all(key.valid_from == T0 and key.valid_until is None for key in peer.keys)


def test_lookups(directory, nodes):
    """Peers are found by name (any case) and by node ID (any spelling)."""
    keys = nodes["so-tai-chinh"]
    assert directory.peer_named("So-Tai-Chinh").node_id == keys.node_id
    assert directory.peer_with_id(keys.node_id.lower().replace("-", "")).name == "so-tai-chinh"
    with pytest.raises(UnknownPeer):
        directory.peer_named("bo-ngoai-giao")
    with pytest.raises(UnknownPeer):
        directory.peer_with_id("not an id")
    assert [p.name for p in directory.peers] == sorted(nodes)


def test_tls_pin_lookup(directory, nodes):
    """A trusted peer's current pin maps to its node ID; anything else maps to None."""
    keys = nodes["ubnd-tinh"]
    assert directory.node_for_tls_pin(keys.tls_spki_sha256) == keys.node_id
    assert directory.node_for_tls_pin("0" * 64) is None
    cert = keys.tls_cert_der
    assert tls.check_pin(cert, 0, directory.node_for_tls_pin) == keys.node_id


def test_revoked_peer_answers_nothing(nodes):
    """After revocation, the pin, the verify key, the encryption key and the target all fail."""
    keys = nodes["so-tu-phap"]
    revoked = _peer(keys).revoke(at=T1, reason="máy bị mất")
    directory = Directory([revoked])
    assert directory.node_for_tls_pin(keys.tls_spki_sha256) is None
    with pytest.raises(UnknownPeer, match="revoked"):
        directory.verify_key_for(keys.node_id)
    with pytest.raises(UnknownPeer, match="revoked"):
        directory.encryption_key_for(keys.node_id)
    with pytest.raises(UnknownPeer, match="máy bị mất"):
        directory.resolve_target("so-tu-phap")
    with pytest.raises(UnknownPeer):
        tls.check_pin(keys.tls_cert_der, 0, directory.node_for_tls_pin)


def test_rotated_tls_key_old_pin_refused(nodes):
    """After a TLS rotation only the new pin is accepted; the old one is history."""
    keys = nodes["so-tu-phap"]
    new = rotate_tls_key(keys, random_bytes=_rng(b"t"))
    pin = new.tls_spki_sha256
    peer = _peer(keys).with_key(PeerKey("tls", pin, pin[:16], T1))
    directory = Directory([peer])
    assert directory.node_for_tls_pin(pin) == keys.node_id
    assert directory.node_for_tls_pin(keys.tls_spki_sha256) is None
    old = [k for k in peer.keys if k.kind == "tls" and k.value == keys.tls_spki_sha256][0]
    assert old.valid_until == T1


def test_encryption_key_for_uses_current_key(nodes):
    """Documents are sealed to the newest encryption key after a rotation."""
    keys = nodes["so-tai-chinh"]
    rotated = rotate_encryption_key(keys, now=T1, random_bytes=_rng(b"e"))
    current = rotated.current_encryption
    peer = _peer(keys).with_key(
        PeerKey("encryption", jws.b64url_encode(current.public_bytes), current.kid, T1))
    kid, public = Directory([peer]).encryption_key_for(keys.node_id)
    assert kid == current.kid
    assert isinstance(public, nacl.public.PublicKey) and bytes(public) == current.public_bytes


def test_verify_key_for(directory, nodes):
    """The verify key checks the peer's signatures; a wrong kid or unknown node is refused."""
    keys = nodes["ubnd-tinh"]
    verify_key = directory.verify_key_for(keys.node_id)
    assert isinstance(verify_key, nacl.signing.VerifyKey)
    token = jws.sign(keys.identity, "lienthong-receipt/1", {"x": 1}, kid=keys.node_id)
    assert jws.verify(token, verify_key, "lienthong-receipt/1") == {"x": 1}
    assert bytes(directory.verify_key_for(keys.node_id, kid=keys.node_id)) == keys.identity_public
    with pytest.raises(UnknownPeer):
        directory.verify_key_for(keys.node_id, kid="OTHER")
    with pytest.raises(UnknownPeer):
        directory.verify_key_for(nodes["so-tu-phap"].node_id.lower())  # exact IDs only here


def test_identity_history(nodes):
    """After an identity change, old keys stay in history with their validity periods."""
    old, new = nodes["so-tu-phap"], _node("so-tu-phap-2")
    peer = _peer(old).with_key(PeerKey("identity", jws.b64url_encode(new.identity_public),
                                       new.node_id, T1))
    assert peer.node_id == new.node_id
    assert [k.kid for k in peer.all_identity_keys()] == [old.node_id, new.node_id]
    assert [k.kid for k in peer.identity_keys_valid_at("2025-03-01T00:00:00Z")] == [old.node_id]
    assert [k.kid for k in peer.identity_keys_valid_at(T2)] == [new.node_id]
    assert peer.identity_keys_valid_at("2024-01-01T00:00:00Z") == ()
    # the boundary belongs to the new key only ([valid_from, valid_until))
    valid = peer.identity_keys_valid_at("2025-06-01T07:00:00+07:00")
    assert [k.kid for k in valid] == [new.node_id]
    directory = Directory([peer])
    assert bytes(directory.verify_key_for(old.node_id, kid=old.node_id)) == old.identity_public
    assert bytes(directory.verify_key_for(new.node_id)) == new.identity_public


def test_resolve_target_peer_and_group(directory, nodes):
    """A peer name gives that peer; a group gives its members once each, in order."""
    assert [p.name for p in directory.resolve_target("so-tu-phap")] == ["so-tu-phap"]
    groups = {"cac-so": ["so-tu-phap", "so-tai-chinh", "So-Tu-Phap"]}
    assert [p.name for p in directory.resolve_target("Cac-So", groups)] == \
           ["so-tu-phap", "so-tai-chinh"]


def test_resolve_target_refusals(directory):
    """Unknown names, unknown members, empty groups and peer/group clashes refuse the whole
    target."""
    with pytest.raises(UnknownPeer, match="no peer or group"):
        directory.resolve_target("bo-ngoai-giao")
    with pytest.raises(UnknownPeer, match="lists 'bo-ngoai-giao'"):
        directory.resolve_target("g", {"g": ["so-tu-phap", "bo-ngoai-giao"]})
    with pytest.raises(DirectoryError):
        directory.resolve_target("g", {"g": []})
    with pytest.raises(DirectoryError, match="both"):
        directory.resolve_target("so-tu-phap", {"so-tu-phap": ["ubnd-tinh"]})


def test_group_with_revoked_member_refused(nodes):
    """A group containing a revoked peer is refused rather than sent to the others only."""
    peers = [_peer(nodes["so-tu-phap"]), _peer(nodes["ubnd-tinh"]).revoke(at=T1, reason="x")]
    with pytest.raises(UnknownPeer, match="revoked"):
        Directory(peers).resolve_target("g", {"g": ["so-tu-phap", "ubnd-tinh"]})


def test_duplicates_refused(nodes):
    """Two peers with the same name, node ID or TLS pin make an inconsistent directory."""
    a = _peer(nodes["so-tu-phap"])
    b = _peer(nodes["so-tai-chinh"])
    with pytest.raises(DirectoryError, match="name"):
        Directory([a, dataclasses.replace(b, name=a.name)])
    with pytest.raises(DirectoryError):
        Directory([a, dataclasses.replace(a, name="copy")])
    pin = a.current("tls").value
    stolen = b.with_key(PeerKey("tls", pin, pin[:16], T1))
    with pytest.raises(DirectoryError, match="TLS"):
        Directory([a, stolen])


def test_peer_invariants(nodes):
    """Inconsistent peers cannot be built: missing keys, two current keys, bad state or ID."""
    peer = _peer(nodes["so-tu-phap"])
    with pytest.raises(InvalidValue, match="no current tls"):
        dataclasses.replace(peer, keys=tuple(k for k in peer.keys if k.kind != "tls"))
    with pytest.raises(InvalidValue, match="2 current"):
        extra = dataclasses.replace(peer.keys[2], value="1" * 64, kid="1" * 16)
        dataclasses.replace(peer, keys=peer.keys + (extra,))
    with pytest.raises(InvalidValue):
        dataclasses.replace(peer, state="maybe")
    with pytest.raises(InvalidValue):
        dataclasses.replace(peer, state="revoked")  # without revoked_at
    with pytest.raises(InvalidValue):
        dataclasses.replace(peer, node_id=nodes["ubnd-tinh"].node_id)
    with pytest.raises(InvalidValue):
        dataclasses.replace(peer, addresses=("no-port",))


@pytest.mark.parametrize("kwargs", [
    {"kind": "signing"}, {"kid": "wrong"}, {"value": "AAAA"}, {"valid_from": "now"},
    {"valid_until": "2024-01-01T00:00:00Z"},
])
def test_peer_key_invariants(nodes, kwargs):
    """A key whose kid does not match its value, an unknown kind or bad dates is refused."""
    keys = nodes["so-tu-phap"]
    base = {"kind": "encryption", "value": jws.b64url_encode(keys.current_encryption.public_bytes),
            "kid": keys.current_encryption.kid, "valid_from": T0, "valid_until": None}
    PeerKey(**base)  # the unchanged key is fine
    with pytest.raises(InvalidValue):
        PeerKey(**{**base, **kwargs})


def test_with_key_refuses_reuse(nodes):
    """Adding a key the peer already had is refused."""
    peer = _peer(nodes["so-tu-phap"])
    with pytest.raises(InvalidValue, match="already"):
        peer.with_key(dataclasses.replace(peer.current("tls"), valid_from=T1))


def test_directory_is_immutable(directory):
    """The snapshot has no way to be changed in place."""
    with pytest.raises(AttributeError):
        directory.extra = 1  # type: ignore[attr-defined]
    assert isinstance(directory.peers, tuple)
